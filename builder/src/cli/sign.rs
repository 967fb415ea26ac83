//! `nodeimg sign MANIFEST --key KEY [-o BUNDLE]`.

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
/// https://nodeimg.dev/measurements/v1; predicate: the manifest). `cosign
/// verify-blob-attestation` can check it offline (see docs/signing.md).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifest.json written by `nodeimg build`.
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
    /// The private key: PKCS#8 PEM from `nodeimg keygen` or `openssl genpkey`, or a key in a
    /// PKCS#11 token (`pkcs11:token=…;object=…?module-path=…&pin-source=…`, ECDSA P-256).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Where to write the bundle [default: manifest.sigstore.json next to MANIFEST]; `-` for
    /// stdout (the summary then goes to stderr). A device or FIFO is written to, not replaced.
    #[arg(short, long, value_name = "BUNDLE")]
    pub output: Option<PathBuf>,
}

pub fn run(a: Args, g: Globals) -> anyhow::Result<ExitCode> {
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| signing::default_bundle_path(&a.manifest));
    let key = signing::load_signer(&a.key)?;
    let manifest =
        crate::infile::read_capped(&a.manifest, crate::infile::MANIFEST_MAX, "manifest")?;
    let bundle = signing::sign_manifest_bytes(&manifest, key.as_ref())
        .with_context(|| format!("signing {}", a.manifest.display()))?;
    crate::outfile::write(&out, &bundle, 0o644)?;
    let public = signing::public_of(key.as_ref())?;
    // With `-o -` stdout carries the bundle: the summary goes to stderr.
    let to_stdout = out.as_os_str() == "-";
    let say = |text: String| {
        if to_stdout {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    if g.json {
        let v = json!({
            "manifest": a.manifest,
            "bundle": out,
            "algorithm": public.algorithm().name(),
            "hint": public.hint(),
        });
        say(serde_json::to_string_pretty(&v)?);
    } else {
        say(format!(
            "signed {} → {} ({} key, hint {})",
            a.manifest.display(),
            out.display(),
            public.algorithm(),
            public.hint()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
