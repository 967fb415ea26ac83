//! `nodeimg verify-bundle ARTIFACT --bundle B (--key PUB | --certificate-identity I
//! --certificate-oidc-issuer O) [--trusted-root F]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::Globals;
use crate::signing::sigstore::{self, IdentityMatch, IdentityPolicy, Signer, Subject};

/// Verify any Sigstore bundle over a file (or a sha256: digest), offline.
///
/// Checks what cosign and sigstore-go check, with Sigstore's own Rust verifier: the Fulcio
/// certificate chain to the trusted root, SCTs and the identity policy (keyless), or the
/// pinned key (managed); the transparency-log entry (inclusion proof against the signed
/// checkpoint, SET, integrated time within the certificate's validity) and RFC 3161
/// timestamps. Trust material: the embedded Sigstore public-good root, or --trusted-root.
/// Never uses the network. For nodeimg manifests, `nodeimg verify` adds the manifest checks.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The signed artifact, or `sha256:HEX` for its digest (when that is also a file name,
    /// use --file).
    #[arg(
        value_name = "ARTIFACT",
        required_unless_present = "file",
        conflicts_with = "file"
    )]
    pub artifact: Option<String>,
    /// The signed artifact as a file, whatever its name.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The Sigstore bundle (JSON).
    #[arg(long, value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// A managed key (SPKI PEM); the bundle must carry a tlog entry unless
    /// --insecure-ignore-tlog.
    #[arg(
        long,
        value_name = "PUB",
        required_unless_present_any = ["certificate_identity", "certificate_identity_regexp"]
    )]
    pub key: Option<PathBuf>,
    /// With --key: accept a bundle without a transparency-log entry.
    #[arg(long, requires = "key")]
    pub insecure_ignore_tlog: bool,
    #[command(flatten)]
    pub sigstore: SigstoreArgs,
}

/// The keyless policy and trust material (shared by `verify` and `verify-bundle`).
#[derive(Debug, Clone, clap::Args)]
pub struct SigstoreArgs {
    /// Keyless: the signer's identity (the Fulcio certificate's SAN: an email or a URI),
    /// exactly. The certificate must chain to the trusted root and carry a valid SCT, and the
    /// tlog entry must verify.
    #[arg(
        long,
        value_name = "IDENTITY",
        requires = "certificate_oidc_issuer",
        conflicts_with_all = ["key", "certificate_identity_regexp"]
    )]
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression (Rust `regex` syntax, RE2-like) the whole identity must
    /// match — anchored at both ends, unlike cosign's flag of the same name, so
    /// `https://github\.com/acme/.*` cannot match `https://evil.example/?https://github.com/acme/`.
    #[arg(
        long,
        value_name = "REGEX",
        requires = "certificate_oidc_issuer",
        conflicts_with = "key"
    )]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer that vouched for the identity.
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: Option<String>,
    /// The Sigstore trusted root for certificates, tlog entries and timestamps (a private
    /// instance) [default: the embedded public-good root]. Verification never uses the network.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Use the embedded Sigstore staging trusted root.
    #[arg(long, conflicts_with = "trusted_root")]
    pub staging: bool,
    /// Never use the network. Verification never does (trust material is embedded or given
    /// with --trusted-root); the flag is accepted as cosign spells it.
    #[arg(long)]
    pub offline: bool,
}

impl SigstoreArgs {
    /// The keyless policy, when an identity (or pattern) and the issuer are given.
    pub fn identity(&self) -> anyhow::Result<Option<IdentityPolicy>> {
        let identity = match (
            &self.certificate_identity,
            &self.certificate_identity_regexp,
        ) {
            (Some(i), _) => IdentityMatch::Exact(i.clone()),
            (None, Some(r)) => IdentityMatch::regex(r)?,
            (None, None) => {
                anyhow::ensure!(
                    self.certificate_oidc_issuer.is_none(),
                    "--certificate-oidc-issuer needs --certificate-identity or \
                     --certificate-identity-regexp"
                );
                return Ok(None);
            }
        };
        let issuer = self
            .certificate_oidc_issuer
            .clone()
            .ok_or_else(|| anyhow::anyhow!("a keyless policy needs --certificate-oidc-issuer"))?;
        Ok(Some(IdentityPolicy { identity, issuer }))
    }
}

pub fn run(a: Args, g: Globals) -> anyhow::Result<ExitCode> {
    let signer = Signer::from_options(
        a.key.as_deref(),
        a.sigstore.identity()?,
        !a.insecure_ignore_tlog,
    )?;
    let root = sigstore::trusted_root(a.sigstore.trusted_root.as_deref(), a.sigstore.staging)?;
    let bundle = crate::infile::read_capped(&a.bundle, crate::infile::BUNDLE_MAX, "bundle")?;
    let (subject, shown) = match (&a.file, &a.artifact) {
        (Some(f), _) => (Subject::File(f), f.display().to_string()),
        (None, Some(s)) => match s.strip_prefix("sha256:") {
            Some(hex) => (Subject::Sha256(hex.to_string()), s.clone()),
            None => (Subject::File(std::path::Path::new(s)), s.clone()),
        },
        (None, None) => unreachable!("clap: ARTIFACT or --file"),
    };
    if let Subject::File(f) = &subject {
        std::fs::File::open(f).with_context(|| format!("opening the artifact {}", f.display()))?;
    }
    let v = sigstore::verify(subject, &bundle, &signer, &root)
        .with_context(|| format!("{} does not verify", a.bundle.display()))?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "verified": true, "details": v }))?
        );
    } else {
        let who = match (&v.identity, &v.issuer) {
            (Some(i), Some(o)) => format!("identity {i} (issuer {o})"),
            _ => "the pinned key".to_string(),
        };
        let log = v.log_summary();
        println!("verified: {shown} signed by {who}{log}");
    }
    Ok(ExitCode::SUCCESS)
}
