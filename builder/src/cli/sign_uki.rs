//! `nodeimg sign-uki UKI (--keys DIR | --key KEY --certificate CERT) [-o OUT]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::Globals;
use crate::secureboot;

/// Sign a UKI (or any PE image) for UEFI Secure Boot.
///
/// Authenticode (PKCS#7 SignedData, SHA-256, RSA) as the firmware checks it: the signature is
/// appended as the certificate table and the header checksum updated. Deterministic: the same
/// image and key give the same bytes. A signature already present is replaced, not appended.
/// `sbverify --cert CERT`, `pesign -S` and `osslsigncode verify` accept the result.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The PE image to sign.
    #[arg(value_name = "UKI")]
    pub uki: PathBuf,
    /// A `nodeimg keygen --secure-boot` directory: signs with db.key / db.crt.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["key", "certificate"],
          required_unless_present_all = ["key", "certificate"])]
    pub keys: Option<PathBuf>,
    /// The RSA private key (PEM).
    #[arg(long, value_name = "KEY", requires = "certificate")]
    pub key: Option<PathBuf>,
    /// Its X.509 certificate (PEM or DER), the one enrolled in db (or issued by it).
    #[arg(long, value_name = "CERT", requires = "key")]
    pub certificate: Option<PathBuf>,
    /// Where to write the signed image [default: replace UKI]; `-` for stdout.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

pub fn run(a: Args, g: Globals) -> anyhow::Result<ExitCode> {
    let (key, cert) = match &a.keys {
        Some(d) => (d.join("db.key"), d.join("db.crt")),
        None => (
            a.key.clone().expect("clap: --key"),
            a.certificate.clone().expect("clap: --certificate"),
        ),
    };
    let signer = secureboot::load_signer(&key, &cert)?;
    let image = crate::infile::read_capped(&a.uki, crate::infile::UKI_MAX, "UKI")?;
    let signed = secureboot::sign_uki(&image, &signer)
        .with_context(|| format!("signing {}", a.uki.display()))?;
    let out = a.output.clone().unwrap_or_else(|| a.uki.clone());
    crate::outfile::write(&out, &signed, 0o644)?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&signed));
    let say = |t: String| {
        if out.as_os_str() == "-" {
            eprintln!("{t}")
        } else {
            println!("{t}")
        }
    };
    if g.json {
        say(serde_json::to_string_pretty(&json!({
            "uki": a.uki, "output": out, "sha256": sha256,
            "certificate": signer.certificate.tbs_certificate.subject.to_string(),
        }))?);
    } else {
        say(format!(
            "signed {} with '{}' -> {} (sha256 {sha256})",
            a.uki.display(),
            signer.certificate.tbs_certificate.subject,
            out.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
