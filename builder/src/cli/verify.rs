//! `nodeimg verify MANIFEST --bundle B --key PUB [--image DISK] [--event-log BIN] [--pcrs FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::Globals;
use crate::signing::{self, verify};

/// Verify a signed manifest, and optionally a disk, event log and PCRs against it.
///
/// Offline, with a pinned public key: the bundle's signature, that the statement's subjects and
/// predicate match the manifest, and optionally a disk image, a TPM event log and observed PCRs
/// against it. Every check is reported; exit 0 only if all hold.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifest.json to verify.
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
    /// The Sigstore bundle [default: manifest.sigstore.json next to MANIFEST].
    #[arg(long, value_name = "BUNDLE")]
    pub bundle: Option<PathBuf>,
    /// The pinned public key (SPKI PEM, e.g. KEY.pub from `nodeimg keygen`, or cosign.pub).
    /// A bundle with a transparency-log entry is then checked through Sigstore (the entry must
    /// verify).
    #[arg(
        long,
        value_name = "PUB",
        required_unless_present_any = ["certificate_identity", "certificate_identity_regexp"]
    )]
    pub key: Option<PathBuf>,
    /// With --key: require a transparency-log entry (Rekor inclusion proof and SET against
    /// the trusted root), as for keyless bundles. Without it a managed-key bundle made offline
    /// verifies with the key alone.
    #[arg(long, requires = "key")]
    pub require_tlog: bool,
    #[command(flatten)]
    pub sigstore: super::verify_bundle::SigstoreArgs,
    /// A disk image: must be the signed disk.raw; its PCRs are recomputed and compared.
    #[arg(long, value_name = "DISK")]
    pub image: Option<PathBuf>,
    /// A binary TCG2 event log to replay against the signed measurements.
    #[arg(long, value_name = "BIN")]
    pub event_log: Option<PathBuf>,
    /// A TDX CC event log (the ACPI CCEL table's log area, SHA-384) to replay against the
    /// signed RTMRs of the manifest's `tdx` entries; names the first event that departs.
    #[arg(long, value_name = "BIN")]
    pub ccel: Option<PathBuf>,
    /// Observed PCR values (JSON {"sha256":{"4":"…"}} or `nodeimg boot --json` output).
    #[arg(long, value_name = "FILE")]
    pub pcrs: Option<PathBuf>,
    /// A TPM quote to check against the signed manifest: the TPMS_ATTEST as `tpm2_quote -m`
    /// writes it. Needs --quote-signature, --ak and --nonce; with --event-log the log must
    /// replay to the quoted PCRs (and may then account for unpinned PCRs in the selection).
    #[arg(long, value_name = "MSG", requires_all = ["quote_signature", "ak", "nonce"])]
    pub quote: Option<PathBuf>,
    /// The quote's TPMT_SIGNATURE (`tpm2_quote -s`).
    #[arg(long, value_name = "SIG", requires = "quote")]
    pub quote_signature: Option<PathBuf>,
    /// The attestation key's public key, SPKI PEM (`tpm2_readpublic -f pem`).
    #[arg(long, value_name = "AK.pem", requires = "quote")]
    pub ak: Option<PathBuf>,
    /// The nonce the verifier sent (hex): the quote's qualifying data, and the SNP report's
    /// REPORT_DATA (zero-padded to 64 bytes), must equal it.
    #[arg(long, value_name = "HEX")]
    pub nonce: Option<String>,
    /// An SEV-SNP attestation report (raw, 1184 bytes) to check against the signed manifest's
    /// launch digests. Needs --vcek and --nonce.
    #[arg(long, value_name = "REPORT", requires_all = ["vcek", "nonce"])]
    pub snp_report: Option<PathBuf>,
    /// The VCEK certificate (DER, from AMD's KDS) that signed the report.
    #[arg(long, value_name = "VCEK.der", requires = "snp_report")]
    pub vcek: Option<PathBuf>,
    /// AMD's ARK (PEM) [default: the built-in Milan, Genoa and Turin roots].
    #[arg(long, value_name = "ARK.pem", requires_all = ["ask", "snp_report"])]
    pub ark: Option<PathBuf>,
    /// AMD's ASK (PEM) for the product, with --ark.
    #[arg(long, value_name = "ASK.pem", requires_all = ["ark", "snp_report"])]
    pub ask: Option<PathBuf>,
    #[command(flatten)]
    pub snp_id: Box<SnpIdArgs>,
    /// Also accept a bundle with a plain message signature over manifest.json (cosign
    /// sign-blob) instead of the nodeimg in-toto statement. Off by default: such a signature
    /// does not say what it signs, so any JSON the same key signed for another purpose would
    /// pass as a manifest.
    #[arg(long)]
    pub allow_message_signature: bool,
}

/// SEV-SNP ID blocks to check against the signed manifest.
#[derive(Debug, clap::Args)]
pub struct SnpIdArgs {
    /// An SEV-SNP ID block (raw 96 bytes or base64) to check against the signed manifest's
    /// digests and policy. Needs --snp-id-auth. Without it, the manifest's own ID blocks are
    /// checked.
    #[arg(long, value_name = "FILE", requires = "snp_id_auth")]
    pub snp_id_block: Option<PathBuf>,
    /// The ID authentication structure that goes with --snp-id-block (raw 4096 bytes or base64).
    #[arg(long, value_name = "FILE", requires = "snp_id_block")]
    pub snp_id_auth: Option<PathBuf>,
    /// The pinned SEV-SNP ID public key (SPKI PEM, ECDSA P-384): ID blocks must be signed by it.
    #[arg(long, value_name = "PUB")]
    pub snp_id_key: Option<PathBuf>,
    /// The pinned SEV-SNP author public key (SPKI PEM, ECDSA P-384).
    #[arg(long, value_name = "PUB")]
    pub snp_author_key: Option<PathBuf>,
}

pub fn run(a: Args, g: Globals) -> anyhow::Result<ExitCode> {
    let bundle = a
        .bundle
        .clone()
        .unwrap_or_else(|| signing::default_bundle_path(&a.manifest));
    anyhow::ensure!(
        bundle.exists(),
        "{} does not exist: {} is not signed (sign it with `nodeimg sign`, or pass --bundle)",
        bundle.display(),
        a.manifest.display()
    );
    let nonce = a
        .nonce
        .as_deref()
        .map(|n| {
            hex::decode(n.trim()).map_err(|e| {
                anyhow::anyhow!("--nonce {n:?} is not hex ({e}); give the bytes the verifier sent")
            })
        })
        .transpose()?;
    anyhow::ensure!(
        nonce.is_none() || a.quote.is_some() || a.snp_report.is_some(),
        "--nonce is only used with --quote or --snp-report"
    );
    let report = verify::verify(&verify::Request {
        manifest: a.manifest.clone(),
        bundle,
        key: a.key,
        identity: a.sigstore.identity()?,
        trusted_root: a.sigstore.trusted_root.clone(),
        staging: a.sigstore.staging,
        require_tlog: a.require_tlog,
        quote: match (&a.quote, &a.quote_signature, &a.ak, &nonce) {
            (Some(m), Some(sig), Some(ak), Some(n)) => Some(verify::QuoteFiles {
                message: m.clone(),
                signature: sig.clone(),
                ak: ak.clone(),
                nonce: n.clone(),
            }),
            _ => None,
        },
        snp: match (&a.snp_report, &a.vcek, &nonce) {
            (Some(r), Some(v), Some(n)) => Some(verify::SnpFiles {
                report: r.clone(),
                vcek: v.clone(),
                ark_ask: a.ark.clone().zip(a.ask.clone()),
                nonce: n.clone(),
            }),
            _ => None,
        },
        snp_id: verify::SnpIdFiles {
            pair: a
                .snp_id
                .snp_id_block
                .clone()
                .zip(a.snp_id.snp_id_auth.clone()),
            id_key: a.snp_id.snp_id_key.clone(),
            author_key: a.snp_id.snp_author_key.clone(),
        },
        image: a.image,
        event_log: a.event_log,
        ccel: a.ccel,
        pcrs: a.pcrs,
        policy: measurements::signing::verify::Policy {
            allow_message_signature: a.allow_message_signature,
        },
    })?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report, &a.manifest);
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_human(r: &verify::Report, manifest: &std::path::Path) {
    for c in &r.checks {
        let status = match c.status {
            verify::Status::Ok => "ok",
            verify::Status::Failed => "FAILED",
            verify::Status::Skipped => "skipped",
        };
        println!("{status:<8} {:<10} {}", c.check, c.detail);
    }
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.status == verify::Status::Failed)
        .map(|c| c.check)
        .collect();
    if failed.is_empty() {
        let by = match (&r.key, &r.identity) {
            (_, Some(i)) => format!("{} (issuer {})", i.identity, i.issuer),
            (Some(k), None) => format!("the pinned {} key {}", k.algorithm, k.hint),
            (None, None) => "?".to_string(),
        };
        println!("verified: {} is signed by {by}", manifest.display());
    } else {
        println!("NOT verified: failed {}", failed.join(", "));
    }
}
