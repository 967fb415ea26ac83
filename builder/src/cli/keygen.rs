//! `nodeimg keygen -o KEY [--algorithm ed25519|ecdsa-p256]` and
//! `nodeimg keygen --secure-boot DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use measurements::signing::Algorithm;
use serde_json::json;

use super::Globals;
use crate::signing;

/// Generate a manifest signing key pair, or a Secure Boot key set.
///
/// With -o: writes KEY (unencrypted PKCS#8 PEM, mode 0600) and KEY.pub (SPKI PEM, for
/// verifiers and `cosign verify-blob-attestation --key`).
///
/// With --secure-boot DIR: PK, KEK and db RSA-2048 keys (NAME.key, 0600) with self-signed
/// SHA-256 certificates (NAME.crt PEM, NAME.cer DER), their EFI_SIGNATURE_LISTs (NAME.esl),
/// authenticated variable payloads (NAME.auth: PK and KEK signed by PK, db and dbx by KEK),
/// dbx.esl, owner.guid, and OVMF_VARS.fd: an OVMF variable store with them enrolled and Secure
/// Boot on, for `nodeimg boot --secure-boot DIR`. An existing NAME.key + NAME.crt pair in DIR is
/// used instead of a new one. Existing files are never overwritten.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the private key; the public key goes to KEY.pub.
    #[arg(
        short,
        long,
        value_name = "KEY",
        required_unless_present = "secure_boot"
    )]
    pub output: Option<PathBuf>,
    /// Signature algorithm. ecdsa-p256 also works with Rekor and cosign 3.
    #[arg(long, value_enum, value_name = "ALG", default_value = "ed25519")]
    pub algorithm: AlgorithmArg,
    /// Make a Secure Boot key set in DIR (created if missing) instead of a signing key.
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub secure_boot: Option<PathBuf>,
    /// Certificate subject prefix: CN=<NAME> PK, <NAME> KEK, <NAME> db.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "nodeimg",
        requires = "secure_boot"
    )]
    pub common_name: String,
    /// Signature owner GUID of the list entries [default: random].
    #[arg(long, value_name = "GUID", requires = "secure_boot")]
    pub owner_guid: Option<String>,
    /// Another certificate (PEM or DER) to enroll in db after the generated one (repeatable),
    /// e.g. a cloud vendor's or Microsoft's UEFI CA.
    #[arg(long = "add-db", value_name = "CERT", requires = "secure_boot")]
    pub add_db: Vec<PathBuf>,
    /// An EFI_SIGNATURE_LIST file to enroll as dbx [default: no dbx].
    #[arg(long, value_name = "ESL", requires = "secure_boot")]
    pub dbx: Option<PathBuf>,
    /// The OVMF variable store to enroll the keys into.
    #[arg(long, value_name = "FILE", default_value = crate::secureboot::DEFAULT_VARS_TEMPLATE,
          requires = "secure_boot")]
    pub ovmf_vars_template: PathBuf,
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
    if let Some(dir) = &a.secure_boot {
        return secure_boot(dir, &a, g);
    }
    let output = a
        .output
        .clone()
        .expect("clap: required unless --secure-boot");
    let public = signing::keygen(&output, a.algorithm.into())?;
    let pub_path = signing::public_key_path(&output);
    if g.json {
        let v = json!({
            "private_key": output,
            "public_key": pub_path,
            "algorithm": public.algorithm().name(),
            "hint": public.hint(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "wrote {} (private, mode 0600) and {} ({} key, hint {})",
            output.display(),
            pub_path.display(),
            public.algorithm(),
            public.hint()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn secure_boot(dir: &std::path::Path, a: &Args, g: Globals) -> anyhow::Result<ExitCode> {
    let owner = match &a.owner_guid {
        Some(s) => Some(measurements::secureboot::Guid::parse(s).ok_or_else(|| {
            anyhow::anyhow!(
                "--owner-guid {s:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
            )
        })?),
        None => None,
    };
    let time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    };
    let opts = crate::secureboot::KeygenOptions {
        common_name: a.common_name.clone(),
        owner,
        extra_db: a.add_db.clone(),
        dbx: a.dbx.clone(),
        vars_template: a.ovmf_vars_template.clone(),
        time,
    };
    let r = crate::secureboot::keygen(dir, &opts)?;
    if g.json {
        let v = json!({
            "directory": dir,
            "owner_guid": r.owner.to_string(),
            "written": r.written,
            "reused": r.reused,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "wrote {} files to {} (owner {}{}); boot with: nodeimg boot DISK --secure-boot {}",
            r.written.len(),
            dir.display(),
            r.owner,
            if r.reused.is_empty() {
                String::new()
            } else {
                format!(", reused {}", r.reused.join(", "))
            },
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
