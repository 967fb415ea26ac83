//! `nodeimg sign MANIFEST (--key KEY [--tlog-upload] | --keyless) [services] [-o BUNDLE]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::Globals;
use crate::signing;

/// Sign a manifest.json as a Sigstore bundle.
///
/// Writes a Sigstore bundle v0.3 holding a DSSE envelope with an in-toto Statement (subjects:
/// the manifest's artifacts and manifest.json; predicate type
/// https://nodeimg.dev/measurements/v1; predicate: the manifest). With --key alone nothing
/// leaves the machine; --tlog-upload publishes the signature to Rekor; --keyless signs with a
/// short-lived Fulcio certificate for an OIDC identity (and always publishes). `cosign
/// verify-blob-attestation` checks all three (see docs/signing.md).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["key", "keyless"])))]
pub struct Args {
    /// The manifest.json written by `nodeimg build`.
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
    /// The private key: PKCS#8 PEM from `nodeimg keygen` or `openssl genpkey`, or a key in a
    /// PKCS#11 token (`pkcs11:token=…;object=…?module-path=…&pin-source=…`, ECDSA P-256).
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Sign keyless: an ephemeral key certified by Fulcio for the OIDC identity in the token
    /// (--identity-token-file, --identity-token, $SIGSTORE_ID_TOKEN or the CI's ambient
    /// credentials), the signature published to Rekor.
    #[arg(long, conflicts_with = "key")]
    pub keyless: bool,
    /// With --key: publish the signature to the Rekor transparency log too.
    #[arg(long, requires = "key")]
    pub tlog_upload: bool,
    #[command(flatten)]
    pub services: ServiceArgs,
    /// Where to write the bundle [default: manifest.sigstore.json next to MANIFEST]; `-` for
    /// stdout (the summary then goes to stderr). A device or FIFO is written to, not replaced.
    #[arg(short, long, value_name = "BUNDLE")]
    pub output: Option<PathBuf>,
}

/// The Sigstore instance to sign through (keyless or tlog upload) [default: public-good].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServiceArgs {
    /// The OIDC identity token (a JWT) for --keyless. Visible to other local users in the
    /// process list: prefer --identity-token-file or $SIGSTORE_ID_TOKEN.
    #[arg(long, value_name = "JWT", requires = "keyless")]
    pub identity_token: Option<String>,
    /// A file holding the OIDC identity token for --keyless.
    #[arg(
        long,
        value_name = "FILE",
        requires = "keyless",
        conflicts_with = "identity_token"
    )]
    pub identity_token_file: Option<PathBuf>,
    /// Fulcio's base URL [default: https://fulcio.sigstore.dev].
    #[arg(long, value_name = "URL")]
    pub fulcio_url: Option<String>,
    /// Rekor v1's base URL [default: https://rekor.sigstore.dev].
    #[arg(long, value_name = "URL")]
    pub rekor_url: Option<String>,
    /// An RFC 3161 timestamp authority's URL (e.g.
    /// https://timestamp.sigstore.dev/api/v1/timestamp) [default: none].
    #[arg(long, value_name = "URL")]
    pub tsa_url: Option<String>,
    /// A Sigstore SigningConfig (v0.2 JSON) naming the instance's Fulcio, Rekor and TSA.
    #[arg(long, value_name = "FILE")]
    pub signing_config: Option<PathBuf>,
    /// The instance's trusted root: the new bundle is verified against it before it is
    /// written [default: the embedded public-good root, for the public-good services].
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
}

impl ServiceArgs {
    /// The service options these flags name.
    pub fn options(&self) -> signing::publish::ServiceOptions {
        signing::publish::ServiceOptions {
            fulcio_url: self.fulcio_url.clone(),
            rekor_url: self.rekor_url.clone(),
            tsa_url: self.tsa_url.clone(),
            signing_config: self.signing_config.clone(),
            trusted_root: self.trusted_root.clone(),
        }
    }

    /// Where the identity token comes from.
    pub fn token_source(&self) -> signing::publish::TokenSource {
        use signing::publish::TokenSource;
        match (&self.identity_token, &self.identity_token_file) {
            (Some(t), _) => TokenSource::Value(t.clone()),
            (None, Some(f)) => TokenSource::File(f.clone()),
            (None, None) => TokenSource::Environment,
        }
    }
}

pub fn run(a: Args, g: Globals) -> anyhow::Result<ExitCode> {
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| signing::default_bundle_path(&a.manifest));
    let manifest =
        crate::infile::read_capped(&a.manifest, crate::infile::MANIFEST_MAX, "manifest")?;
    let mut summary = serde_json::Map::new();
    summary.insert("manifest".into(), json!(a.manifest));
    summary.insert("bundle".into(), json!(out));
    let (bundle, text) = if a.keyless || a.tlog_upload {
        let services = signing::publish::Services::resolve(&a.services.options())?;
        let key = a.key.as_deref().map(signing::load_signer).transpose()?;
        let method = match &key {
            Some(k) => signing::publish::Method::KeyWithTlog(k.as_ref()),
            None => signing::publish::Method::Keyless(Box::new(a.services.token_source().token()?)),
        };
        let (bundle, p) = signing::publish::sign(&manifest, &method, &services)
            .with_context(|| format!("signing {}", a.manifest.display()))?;
        let who = match (&key, &p.identity) {
            (Some(k), _) => k.describe(),
            (None, Some(i)) => format!(
                "{i} (issuer {})",
                p.issuer.as_deref().unwrap_or("not verified")
            ),
            (None, None) => "an unknown identity".into(),
        };
        let text = format!(
            "signed {} → {} by {who}; Rekor {} entry {}{}{}",
            a.manifest.display(),
            out.display(),
            p.rekor,
            p.log_index,
            if p.timestamped {
                "; RFC 3161 timestamp"
            } else {
                ""
            },
            if p.verified {
                "; verified against the trusted root"
            } else {
                "; NOT verified (no trusted root for this instance)"
            }
        );
        summary.insert("published".into(), serde_json::to_value(&p)?);
        (bundle, text)
    } else {
        let key_path = a.key.as_deref().context("--key or --keyless")?;
        let key = signing::load_signer(key_path)?;
        let bundle = signing::sign_manifest_bytes(&manifest, key.as_ref())
            .with_context(|| format!("signing {}", a.manifest.display()))?;
        let public = signing::public_of(key.as_ref())?;
        summary.insert("algorithm".into(), json!(public.algorithm().name()));
        summary.insert("hint".into(), json!(public.hint()));
        let text = format!(
            "signed {} → {} ({} key, hint {})",
            a.manifest.display(),
            out.display(),
            public.algorithm(),
            public.hint()
        );
        (bundle, text)
    };
    crate::outfile::write(&out, &bundle, 0o644)?;
    // With `-o -` stdout carries the bundle: the summary goes to stderr.
    let to_stdout = out.as_os_str() == "-";
    let text = if g.json {
        serde_json::to_string_pretty(&summary)?
    } else {
        text
    };
    if to_stdout {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
