//! SEV-SNP attestation reports (SEV-SNP ABI §7.3, `ATTESTATION_REPORT`, 1184 bytes) checked
//! against AMD's key chain and a manifest's SNP launch digests, with virtee's `sev` crate
//! (parsing, the ARK → ASK → VCEK chain, the report's ECDSA P-384 signature).

use serde::Deserialize;
use sev::certs::snp::{ca, Certificate, Chain, Verifiable};
use sev::firmware::guest::AttestationReport;

use super::{Check, Checks, Status};

/// The manifest's SNP launch digests (`snp` entries; other fields of the JSON are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SnpReference {
    #[serde(default)]
    pub snp: Option<Vec<crate::manifest::SnpEntry>>,
}

/// An attestation report, its VCEK, optionally the ASK and ARK (else AMD's, built in, for
/// Milan, Genoa and Turin) and the nonce the verifier asked to be bound into REPORT_DATA.
#[derive(Debug, Clone, Copy)]
pub struct SnpEvidence<'a> {
    /// The raw 1184-byte report (what `/dev/sev-guest` / `snpguest report` returns).
    pub report: &'a [u8],
    /// The VCEK certificate, DER (from AMD's KDS for this chip and TCB).
    pub vcek_der: &'a [u8],
    /// The ARK and ASK, PEM (both or neither).
    pub ca_pem: Option<(&'a [u8], &'a [u8])>,
    /// REPORT_DATA must be this nonce, zero-padded to 64 bytes.
    pub nonce: &'a [u8],
}

/// Bit 19 of the guest policy: the hypervisor may debug the guest (read its memory).
const POLICY_DEBUG: u64 = 1 << 19;
/// Bit 18: a migration agent may be associated with the guest.
const POLICY_MIGRATE_MA: u64 = 1 << 18;

const SNP_CHECKS: [&str; 6] = [
    "snp-report",
    "snp-vcek",
    "snp-signature",
    "snp-report-data",
    "snp-policy",
    "snp-measurement",
];

/// Every check of an SNP report against the manifest's launch digests; accepted only if none
/// failed.
///
/// * `snp-report`: 1184 bytes, a report version the crate knows.
/// * `snp-vcek`: the VCEK is signed by the ASK, the ASK by the ARK (given, or AMD's built-in
///   Milan / Genoa / Turin roots; the product is named).
/// * `snp-signature`: the report's ECDSA P-384 signature verifies with the VCEK.
/// * `snp-report-data`: REPORT_DATA is the verifier's nonce (zero-padded): freshness.
/// * `snp-policy`: the guest policy forbids debugging (a debuggable guest's memory is the
///   host's to read) and migration agents.
/// * `snp-measurement`: MEASUREMENT is one of the manifest's launch digests (which vCPU count
///   and type is named); otherwise the measurement is.
pub fn verify_snp_report(e: &SnpEvidence<'_>, reference: &SnpReference) -> Vec<Check> {
    let mut c = Checks::default();
    let report = c.result(
        "snp-report",
        parse_report(e.report).map(|r| {
            let d = format!(
                "attestation report v{} (VMPL {}, guest SVN {}, reported TCB {:?})",
                r.version, r.vmpl, r.guest_svn, r.reported_tcb
            );
            (r, d)
        }),
    );
    let Some(report) = report else {
        c.skip_rest(&SNP_CHECKS, "not checked: the report could not be read");
        return c.0;
    };
    let chain = c.result("snp-vcek", vcek_chain(e));
    let Some(chain) = chain else {
        c.skip_rest(&SNP_CHECKS, "not checked: the VCEK is not AMD's");
        return c.0;
    };
    let signed = c.result(
        "snp-signature",
        (&chain, &report)
            .verify()
            .map(|()| ((), "ECDSA P-384 signature by the VCEK".to_string()))
            .map_err(|x| format!("the report's signature does not verify with the VCEK: {x}")),
    );
    if signed.is_none() {
        c.skip_rest(
            &SNP_CHECKS,
            "not checked: nothing in a report is trusted before its signature verified",
        );
        return c.0;
    }
    let data: &[u8] = &report.report_data[..];
    let want: Vec<u8> = if e.nonce.len() <= 64 {
        let mut v = e.nonce.to_vec();
        v.resize(64, 0);
        v
    } else {
        Vec::new()
    };
    if e.nonce.len() > 64 {
        c.push(
            "snp-report-data",
            Status::Failed,
            format!("the nonce is {} bytes; REPORT_DATA holds 64", e.nonce.len()),
        );
    } else if data == want.as_slice() {
        c.push(
            "snp-report-data",
            Status::Ok,
            format!("REPORT_DATA is the nonce {}", hex::encode(e.nonce)),
        );
    } else {
        c.push(
            "snp-report-data",
            Status::Failed,
            format!(
                "REPORT_DATA is {}, not the nonce {} (zero-padded): a replayed or foreign report",
                hex::encode(data),
                hex::encode(e.nonce)
            ),
        );
    }
    let policy: u64 = report.policy.into();
    let mut bad = Vec::new();
    if policy & POLICY_DEBUG != 0 {
        bad.push("debugging allowed (bit 19)");
    }
    if policy & POLICY_MIGRATE_MA != 0 {
        bad.push("a migration agent allowed (bit 18)");
    }
    if bad.is_empty() {
        c.push(
            "snp-policy",
            Status::Ok,
            format!("guest policy {policy:#x}: no debugging, no migration agent"),
        );
    } else {
        c.push(
            "snp-policy",
            Status::Failed,
            format!("guest policy {policy:#x}: {}", bad.join(", ")),
        );
    }
    let measured = hex::encode(&report.measurement[..]);
    let entries = reference.snp.as_deref().unwrap_or(&[]);
    if let Some(x) = entries
        .iter()
        .find(|x| x.measurement.eq_ignore_ascii_case(&measured))
    {
        launch_policy_checks(&mut c, &report, policy, x);
    }
    match entries
        .iter()
        .find(|x| x.measurement.eq_ignore_ascii_case(&measured))
    {
        Some(x) => c.push(
            "snp-measurement",
            Status::Ok,
            format!(
                "MEASUREMENT {measured} is the manifest's launch digest for {} vCPU(s) of {} \
                 ({}, firmware sha256 {})",
                x.vcpus, x.vcpu_type, x.vmm_type, x.ovmf_sha256
            ),
        ),
        None if entries.is_empty() => c.push(
            "snp-measurement",
            Status::Failed,
            format!(
                "the manifest has no SNP launch digests ([measurements.snp]); MEASUREMENT is \
                 {measured}"
            ),
        ),
        None => c.push(
            "snp-measurement",
            Status::Failed,
            format!(
                "MEASUREMENT {measured} is none of the manifest's {} launch digests (another \
                 firmware, vCPU count or type, or another image)",
                entries.len()
            ),
        ),
    }
    c.0
}

/// With a manifest that records the policy (and an ID block) for the matched digest: the
/// report's POLICY is that policy — the same digest launched with a weaker policy is refused —
/// and its ID fields are the block's (the PSP put them there only if the block verified).
fn launch_policy_checks(
    c: &mut Checks,
    report: &AttestationReport,
    policy: u64,
    x: &crate::manifest::SnpEntry,
) {
    if let Some(want) = &x.policy {
        let got = format!("{policy:#x}");
        let (status, detail) = if got.eq_ignore_ascii_case(want) {
            (
                Status::Ok,
                format!("POLICY {got} is the manifest's for this digest"),
            )
        } else {
            (
                Status::Failed,
                format!(
                    "POLICY {got} is not the manifest's {want} for this digest (the host \
                     launched the image with another guest policy)"
                ),
            )
        };
        c.push("snp-report-policy", status, detail);
    }
    let Some(id) = &x.id_block else { return };
    let zero = "0".repeat(96);
    let author = id.author_key_digest.as_deref().unwrap_or(&zero);
    let fields = [
        (
            "ID_KEY_DIGEST",
            hex::encode(&report.id_key_digest[..]),
            id.id_key_digest.as_str(),
        ),
        (
            "AUTHOR_KEY_DIGEST",
            hex::encode(&report.author_key_digest[..]),
            author,
        ),
        (
            "FAMILY_ID",
            hex::encode(&report.family_id[..]),
            id.family_id.as_str(),
        ),
        (
            "IMAGE_ID",
            hex::encode(&report.image_id[..]),
            id.image_id.as_str(),
        ),
    ];
    let mut bad: Vec<String> = fields
        .iter()
        .filter(|(_, got, want)| !got.eq_ignore_ascii_case(want))
        .map(|(n, got, want)| format!("{n} {got}, manifest {want}"))
        .collect();
    if report.guest_svn != id.guest_svn {
        bad.push(format!(
            "GUEST_SVN {}, manifest {}",
            report.guest_svn, id.guest_svn
        ));
    }
    if bad.is_empty() {
        c.push(
            "snp-report-id",
            Status::Ok,
            format!(
                "launched with the manifest's ID block (ID key digest {})",
                id.id_key_digest
            ),
        );
    } else {
        c.push(
            "snp-report-id",
            Status::Failed,
            format!(
                "not launched with the manifest's ID block: {}",
                bad.join("; ")
            ),
        );
    }
}

fn parse_report(bytes: &[u8]) -> Result<AttestationReport, String> {
    const LEN: usize = 1184;
    if bytes.len() != LEN {
        return Err(format!(
            "{} bytes; an SEV-SNP attestation report is {LEN}",
            bytes.len()
        ));
    }
    AttestationReport::from_bytes(bytes).map_err(|e| format!("not an attestation report: {e}"))
}

/// The chain the VCEK verifies under: the given ARK/ASK, or the first built-in product.
fn vcek_chain(e: &SnpEvidence<'_>) -> Result<(Chain, String), String> {
    let vcek = Certificate::from_der(e.vcek_der)
        .map_err(|x| format!("the VCEK is not a DER X.509 certificate: {x}"))?;
    let candidates: Vec<(String, ca::Chain)> = match e.ca_pem {
        Some((ark, ask)) => vec![(
            "the given ARK/ASK".into(),
            ca::Chain::from_pem(ark, ask).map_err(|x| format!("the ARK/ASK: {x}"))?,
        )],
        None => {
            use sev::certs::snp::builtin::{genoa, milan, turin};
            let mut v = Vec::new();
            for (name, ark, ask) in [
                ("Milan", milan::ark(), milan::ask()),
                ("Genoa", genoa::ark(), genoa::ask()),
                ("Turin", turin::ark(), turin::ask()),
            ] {
                if let (Ok(ark), Ok(ask)) = (ark, ask) {
                    v.push((format!("AMD's {name} ARK/ASK"), ca::Chain { ark, ask }));
                }
            }
            v
        }
    };
    for (name, ca) in candidates {
        let chain = Chain {
            ca,
            vek: vcek.clone(),
        };
        if chain.verify().is_ok() {
            return Ok((chain, format!("the VCEK chains to {name}")));
        }
    }
    Err(match e.ca_pem {
        Some(_) => "the VCEK does not chain to the given ARK/ASK".into(),
        None => "the VCEK does not chain to AMD's ARK/ASK for Milan, Genoa or Turin (a VCEK \
                 for another product, or not AMD's)"
            .into(),
    })
}
