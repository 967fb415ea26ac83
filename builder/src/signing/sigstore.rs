//! Verification of any Sigstore bundle (v0.1–v0.3) through Sigstore's own Rust verifier
//! (`sigstore-verify`): Fulcio certificate chains to the trusted root, SCTs, the identity
//! policy, transparency-log entries (Rekor v1 and v2: inclusion proof against the signed
//! checkpoint, SET, integrated time) and RFC 3161 timestamps, or a managed key. Offline: the
//! Sigstore public-good trusted root is embedded; `--trusted-root` names another instance's.
//! `nodeimg verify-bundle` and `scripts/sigstore-conformance-client` are built on it.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use sigstore_verify::trust_root::{
    TrustedRoot, SIGSTORE_PRODUCTION_TRUSTED_ROOT, SIGSTORE_STAGING_TRUSTED_ROOT,
};
use sigstore_verify::types::{Artifact, Bundle, DerPublicKey, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, Verifier};

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Signer {
    /// A managed key (SPKI PEM); the bundle's tlog entry is required unless `require_tlog`
    /// is false.
    Key { pem: String, require_tlog: bool },
    /// A Fulcio certificate whose identity (SAN) matches, issued after a login at this OIDC
    /// issuer (`None`: any issuer, only for checking a bundle just made).
    Identity {
        identity: IdentityMatch,
        issuer: Option<String>,
    },
}

/// How the certificate's identity must look.
#[derive(Debug, Clone)]
pub enum IdentityMatch {
    /// Exactly this SAN (`--certificate-identity`).
    Exact(String),
    /// A SAN the whole of which matches this expression (`--certificate-identity-regexp`;
    /// anchored at both ends, unlike cosign's substring search).
    Regex(regex::Regex, String),
    /// Any identity: the chain, SCT and log are still checked.
    Any,
}

impl IdentityMatch {
    /// `--certificate-identity-regexp R`: R must match the whole identity.
    pub fn regex(expr: &str) -> Result<IdentityMatch> {
        let anchored = format!("^(?:{expr})$");
        let re = regex::RegexBuilder::new(&anchored)
            .size_limit(1 << 20)
            .build()
            .with_context(|| format!("--certificate-identity-regexp {expr:?}"))?;
        Ok(IdentityMatch::Regex(re, expr.to_string()))
    }

    fn describe(&self) -> String {
        match self {
            IdentityMatch::Exact(s) => s.clone(),
            IdentityMatch::Regex(_, expr) => format!("/{expr}/"),
            IdentityMatch::Any => "any identity".into(),
        }
    }
}

/// The keyless policy a verifier pins: identity (exact or pattern) and OIDC issuer.
#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    pub identity: IdentityMatch,
    pub issuer: String,
}

impl IdentityPolicy {
    /// The identity (or `/pattern/`) for reports.
    pub fn identity_text(&self) -> String {
        self.identity.describe()
    }

    /// "IDENTITY (issuer ISSUER)" for reports.
    pub fn describe(&self) -> String {
        format!("{} (issuer {})", self.identity.describe(), self.issuer)
    }
}

impl Signer {
    /// The signer a verifier pins: identity + issuer (keyless) when given, else the public key
    /// file `key` (SPKI PEM), whose bundle must carry a tlog entry when `require_tlog`.
    pub fn from_options(
        key: Option<&Path>,
        identity: Option<IdentityPolicy>,
        require_tlog: bool,
    ) -> Result<Signer> {
        match (identity, key) {
            (Some(p), _) => Ok(Signer::Identity {
                identity: p.identity,
                issuer: Some(p.issuer),
            }),
            (None, Some(k)) => {
                let pem = crate::infile::read_capped(k, crate::infile::KEY_MAX, "public key")?;
                Ok(Signer::Key {
                    pem: String::from_utf8(pem)
                        .map_err(|_| anyhow!("{}: not a PEM text file", k.display()))?,
                    require_tlog,
                })
            }
            (None, None) => bail!(
                "give --certificate-identity and --certificate-oidc-issuer (keyless) or --key \
                 (managed key)"
            ),
        }
    }
}

/// What was verified, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The certificate's identity (keyless).
    pub identity: Option<String>,
    /// The OIDC issuer (keyless).
    pub issuer: Option<String>,
    /// The tlog integrated time (Unix seconds), when there is a tlog entry.
    pub integrated_time: Option<i64>,
    /// Whether a tlog entry was verified.
    pub tlog_verified: bool,
    /// Verified signing times (Unix seconds): the tlog integrated time and RFC 3161 timestamps.
    pub timestamps: Vec<i64>,
}

impl Verified {
    /// "; tlog entry verified (integrated time T); N RFC 3161 timestamp(s) verified", for reports.
    pub fn log_summary(&self) -> String {
        let mut log = match (self.tlog_verified, self.integrated_time) {
            (true, Some(t)) => format!("; tlog entry verified (integrated time {t})"),
            (true, None) => "; tlog entry verified".to_string(),
            (false, _) => "; no tlog entry checked".to_string(),
        };
        if !self.timestamps.is_empty() {
            log.push_str(&format!(
                "; {} verified timestamp(s) (tlog integrated time, RFC 3161)",
                self.timestamps.len()
            ));
        }
        log
    }
}

/// The artifact: its bytes, a file (read once, in constant memory), or `sha256:HEX`.
#[derive(Debug)]
pub enum Subject<'a> {
    /// The bytes.
    Bytes(&'a [u8]),
    /// A file, streamed.
    File(&'a Path),
    /// A SHA-256 digest.
    Sha256(String),
}

/// One verification of `subject` under `policy`.
fn run(
    verifier: &Verifier,
    subject: &Subject<'_>,
    bundle: &Bundle,
    policy: &(impl sigstore_verify::Policy + ?Sized),
) -> Result<sigstore_verify::VerificationResult> {
    let r = match subject {
        Subject::Bytes(b) => verifier.verify(Artifact::from_blob(b), bundle, policy),
        Subject::Sha256(hex) => {
            let digest = Sha256Hash::from_hex(hex).map_err(|e| anyhow!("sha256:{hex}: {e}"))?;
            verifier.verify(Artifact::from_digest(digest), bundle, policy)
        }
        Subject::File(path) => {
            let f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            verifier.verify_reader(std::io::BufReader::new(f), bundle, policy)
        }
    };
    r.map_err(|e| anyhow!("{e}"))
}

/// The trusted root: `path`, or the embedded Sigstore public-good one.
pub fn trusted_root(path: Option<&Path>, staging: bool) -> Result<TrustedRoot> {
    match path {
        Some(p) => {
            let text = crate::infile::read_capped(p, 4 << 20, "trusted root")?;
            let text =
                String::from_utf8(text).map_err(|_| anyhow!("{}: not UTF-8", p.display()))?;
            TrustedRoot::from_json(&text)
                .with_context(|| format!("parsing the trusted root {}", p.display()))
        }
        None if staging => TrustedRoot::from_json(SIGSTORE_STAGING_TRUSTED_ROOT)
            .context("the embedded Sigstore staging trusted root"),
        None => TrustedRoot::from_json(SIGSTORE_PRODUCTION_TRUSTED_ROOT)
            .context("the embedded Sigstore public-good trusted root"),
    }
}

/// Verifies `bundle_json` over `subject` for `signer` with `root`.
pub fn verify(
    subject: Subject<'_>,
    bundle_json: &[u8],
    signer: &Signer,
    root: &TrustedRoot,
) -> Result<Verified> {
    let text =
        std::str::from_utf8(bundle_json).map_err(|_| anyhow!("the bundle is not UTF-8 JSON"))?;
    let bundle = Bundle::from_json(text).map_err(|e| anyhow!("parsing the bundle: {e}"))?;
    let verifier = Verifier::new(root).map_err(|e| anyhow!("the trusted root: {e}"))?;
    let result = match signer {
        Signer::Key { pem, require_tlog } => {
            let key = DerPublicKey::from_pem(pem).map_err(|e| anyhow!("the public key: {e}"))?;
            let mut policy = PublicKeyVerificationPolicy::new(key);
            if !require_tlog {
                policy = policy.skip_tlog_unsafe();
            }
            run(&verifier, &subject, &bundle, &policy)?
        }
        Signer::Identity { identity, issuer } => {
            if matches!(identity, IdentityMatch::Exact(i) if i.is_empty())
                || issuer.as_ref().is_some_and(|i| i.is_empty())
            {
                bail!(
                    "a keyless bundle needs --certificate-identity (or \
                     --certificate-identity-regexp) and --certificate-oidc-issuer"
                );
            }
            let mut policy = match identity {
                IdentityMatch::Exact(i) => VerificationPolicy::any_identity().require_identity(i),
                IdentityMatch::Regex(..) | IdentityMatch::Any => VerificationPolicy::any_identity(),
            };
            if let Some(issuer) = issuer {
                policy = policy.require_issuer(issuer.clone());
            }
            let result = run(&verifier, &subject, &bundle, &policy)?;
            if let IdentityMatch::Regex(re, _) = identity {
                let found = result.identity().map(|i| i.as_str().to_string());
                match found {
                    Some(f) if re.is_match(&f) => {}
                    Some(f) => bail!(
                        "the certificate's identity {f} does not match \
                         --certificate-identity-regexp {}",
                        identity.describe()
                    ),
                    None => bail!("the bundle has no certificate identity to match"),
                }
            }
            result
        }
    };
    Ok(Verified {
        identity: result.identity().map(|i| i.as_str().to_string()),
        issuer: result.issuer().map(str::to_string),
        integrated_time: result.integrated_time().map(|t| t.as_second()),
        tlog_verified: result.tlog_verified(),
        timestamps: result
            .verified_timestamps()
            .iter()
            .map(|t| t.as_second())
            .collect(),
    })
}
