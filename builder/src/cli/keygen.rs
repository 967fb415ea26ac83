//! `nodeimg keygen -o KEY [--algorithm ed25519|ecdsa-p256|ecdsa-p384]` and
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
    /// Where to write the private key; the public key goes to KEY.pub. A PKCS#11 URI
    /// (`pkcs11:token=…;object=…?module-path=…&pin-value=…`) makes the key inside the token
    /// instead (ECDSA P-256, or RSA-2048 for Secure Boot) and needs --public-key.
    #[arg(
        short,
        long,
        value_name = "KEY",
        required_unless_present = "secure_boot"
    )]
    pub output: Option<PathBuf>,
    /// Signature algorithm [default: ed25519; ecdsa-p256 for a token key]. ecdsa-p256 also
    /// works with Rekor and cosign 3; rsa-2048 only in a token, for Secure Boot signing;
    /// ecdsa-p384 for SEV-SNP ID and author keys (`measure snp --id-key`).
    #[arg(long, value_enum, value_name = "ALG")]
    pub algorithm: Option<AlgorithmArg>,
    /// With a PKCS#11 URI: where to write the new key's public key (SPKI PEM).
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
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
    /// Use this PKCS#11 token key (RSA, e.g. made with `keygen -o pkcs11:… --algorithm
    /// rsa-2048`) as the db key: db.crt is self-signed by it and no db.key is written; then
    /// sign with `[secure-boot] keys = DIR` and `key = "pkcs11:…"`.
    #[arg(long, value_name = "PKCS11_URI", requires = "secure_boot")]
    pub db_key: Option<String>,
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
    /// RSA-2048 (PKCS#1 v1.5, SHA-256): a token key for Secure Boot signing.
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// ECDSA on NIST P-384 with SHA-384: an SEV-SNP ID or author key (not for manifests).
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
}

impl AlgorithmArg {
    /// The file-key algorithm (RSA keys are made only in tokens or by `--secure-boot`).
    fn file_algorithm(self) -> anyhow::Result<Algorithm> {
        match self {
            AlgorithmArg::Ed25519 => Ok(Algorithm::Ed25519),
            AlgorithmArg::EcdsaP256 => Ok(Algorithm::EcdsaP256),
            AlgorithmArg::Rsa2048 => anyhow::bail!(
                "--algorithm rsa-2048 makes a key in a PKCS#11 token (-o pkcs11:…); Secure Boot \
                 file keys come from `nodeimg keygen --secure-boot DIR`"
            ),
            AlgorithmArg::EcdsaP384 => {
                anyhow::bail!("ecdsa-p384 keys are SEV-SNP ID keys, not manifest signing keys")
            }
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
    if crate::pkcs11::is_uri(&output.to_string_lossy()) {
        return token(&output.to_string_lossy(), &a, g);
    }
    anyhow::ensure!(
        a.public_key.is_none(),
        "--public-key is for a key made in a PKCS#11 token; a file key's public key goes to KEY.pub"
    );
    if a.algorithm == Some(AlgorithmArg::EcdsaP384) {
        return snp_keygen(&output, g);
    }
    let algorithm = a
        .algorithm
        .unwrap_or(AlgorithmArg::Ed25519)
        .file_algorithm()?;
    let public = signing::keygen(&output, algorithm)?;
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

/// An ECDSA P-384 key pair for SEV-SNP ID blocks (`measure snp --id-key`, `[measurements.snp]
/// id-key`): KEY (PKCS#8, 0600) and KEY.pub (SPKI PEM, for `verify --snp-id-key`).
fn snp_keygen(output: &std::path::Path, g: Globals) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let public_path = signing::public_key_path(output);
    for p in [output, public_path.as_path()] {
        anyhow::ensure!(
            std::fs::symlink_metadata(p).is_err(),
            "{} already exists; refusing to overwrite a key (remove it or choose another -o)",
            p.display()
        );
    }
    let key = measurements::signer::P384Key::generate(
        &mut rand_core::OsRng,
        &output.display().to_string(),
    );
    signing::write_new(output, key.to_pkcs8_pem()?.as_bytes(), 0o600)
        .with_context(|| format!("writing private key {}", output.display()))?;
    if let Err(e) = signing::write_new(&public_path, key.public_key_pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(output);
        return Err(e).with_context(|| format!("writing public key {}", public_path.display()));
    }
    let id = measurements::cvm::idblock::signer_key(&key)?;
    let digest = hex::encode(id.digest());
    if g.json {
        let v = json!({
            "private_key": output,
            "public_key": public_path,
            "algorithm": "ecdsa-p384",
            "key_digest": digest,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "wrote {} (private, mode 0600) and {} (ECDSA P-384 SEV-SNP ID/author key, key digest {digest})",
            output.display(),
            public_path.display(),
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
        db_key: a.db_key.clone(),
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

fn token(uri: &str, a: &Args, g: Globals) -> anyhow::Result<ExitCode> {
    use crate::pkcs11::TokenKeyType;
    let public_path = a.public_key.clone().ok_or_else(|| {
        anyhow::anyhow!("a key made in a PKCS#11 token needs --public-key FILE for its public key")
    })?;
    anyhow::ensure!(
        std::fs::symlink_metadata(&public_path).is_err(),
        "{} already exists; refusing to overwrite it",
        public_path.display()
    );
    let kind = match a.algorithm.unwrap_or(AlgorithmArg::EcdsaP256) {
        AlgorithmArg::EcdsaP256 => TokenKeyType::P256,
        AlgorithmArg::Rsa2048 => TokenKeyType::Rsa2048,
        AlgorithmArg::EcdsaP384 => TokenKeyType::P384,
        AlgorithmArg::Ed25519 => anyhow::bail!(
            "Ed25519 keys in PKCS#11 tokens are not supported: use --algorithm ecdsa-p256"
        ),
    };
    let der = crate::pkcs11::generate(uri, kind)?;
    let pem = spki_pem(&der)?;
    signing::write_new(&public_path, pem.as_bytes(), 0o644)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", public_path.display()))?;
    let shown = crate::pkcs11::Uri::parse(uri)?.display();
    if g.json {
        let v = json!({ "token_key": shown, "public_key": public_path, "algorithm": format!("{kind:?}") });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "made {kind:?} key {shown} in the token; public key: {}",
            public_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// SPKI DER as PEM (`PUBLIC KEY`).
fn spki_pem(der: &[u8]) -> anyhow::Result<String> {
    use x509_cert::der::{Decode, EncodePem};
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(der)
        .map_err(|e| anyhow::anyhow!("the token's public key: {e}"))?;
    spki.to_pem(x509_cert::der::pem::LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding the public key: {e}"))
}
