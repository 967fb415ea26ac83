//! `nodeimg keygen -o KEY [--algorithm ed25519|ecdsa-p256]`.

use std::path::PathBuf;
use std::process::ExitCode;

use measurements::signing::Algorithm;
use serde_json::json;

use super::Globals;
use crate::signing;

/// Generate a signing key pair.
///
/// Writes KEY (unencrypted PKCS#8 PEM, mode 0600) and KEY.pub (SPKI PEM, for verifiers and
/// `cosign verify-blob-attestation --key`). Existing files are never overwritten.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the private key; the public key goes to KEY.pub.
    #[arg(short, long, value_name = "KEY")]
    pub output: PathBuf,
    /// Signature algorithm. ecdsa-p256 also works with Rekor and cosign 3.
    #[arg(long, value_enum, value_name = "ALG", default_value = "ed25519")]
    pub algorithm: AlgorithmArg,
}

/// `--algorithm` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlgorithmArg {
    /// Pure Ed25519.
    #[value(name = "ed25519")]
    Ed25519,
    /// ECDSA on NIST P-256 with SHA-256.
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Ed25519 => Algorithm::Ed25519,
            AlgorithmArg::EcdsaP256 => Algorithm::EcdsaP256,
        }
    }
}

pub fn run(a: Args, g: Globals) -> anyhow::Result<ExitCode> {
    let public = signing::keygen(&a.output, a.algorithm.into())?;
    let pub_path = signing::public_key_path(&a.output);
    if g.json {
        let v = json!({
            "private_key": a.output,
            "public_key": pub_path,
            "algorithm": public.algorithm().name(),
            "hint": public.hint(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "wrote {} (private, mode 0600) and {} ({} key, hint {})",
            a.output.display(),
            pub_path.display(),
            public.algorithm(),
            public.hint()
        );
    }
    Ok(ExitCode::SUCCESS)
}
