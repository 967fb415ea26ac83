//! File-level glue around [`measurements::signing`]: key files (`nodeimg keygen`), signing a
//! `manifest.json` (`nodeimg sign`, and `nodeimg build` when `[signing] key` is set), and
//! [`verify`] for `nodeimg verify`.
//!
//! Private keys are read into zeroizing buffers, written with mode 0600 and never logged:
//! diagnostics name the key's file, algorithm and public hint only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use measurements::signing::{self, Algorithm, KeyError, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

pub mod publish;
pub mod sigstore;
pub mod snp_id;
pub mod verify;

/// The bundle's file name next to `manifest.json` in a build output.
pub const BUNDLE_FILE: &str = "manifest.sigstore.json";

/// `KEY.pub` for a private key path `KEY`.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// `manifest.sigstore.json` in the manifest's directory.
pub fn default_bundle_path(manifest: &Path) -> PathBuf {
    manifest.with_file_name(BUNDLE_FILE)
}

/// A fresh key from the operating system's random source.
pub fn generate(algorithm: Algorithm) -> Result<SigningKey> {
    for _ in 0..16 {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice())
            .map_err(|e| anyhow::anyhow!("reading the system random source: {e}"))?;
        match SigningKey::from_seed(algorithm, &seed) {
            Err(KeyError::SeedOutOfRange) => continue,
            other => return Ok(other?),
        }
    }
    anyhow::bail!("the system random source gave 16 invalid P-256 scalars in a row")
}

/// Generates a key pair: `key` (PKCS#8 PEM, mode 0600) and `key.pub` (SPKI PEM, 0644).
/// Refuses to overwrite either file.
pub fn keygen(key: &Path, algorithm: Algorithm) -> Result<VerifyingKey> {
    let public_path = public_key_path(key);
    for p in [key, public_path.as_path()] {
        anyhow::ensure!(
            std::fs::symlink_metadata(p).is_err(),
            "{} already exists; refusing to overwrite a key (remove it or choose another -o)",
            p.display()
        );
    }
    let secret = generate(algorithm)?;
    let pem = secret.to_pkcs8_pem()?;
    write_new(key, pem.as_bytes(), 0o600)
        .with_context(|| format!("writing private key {}", key.display()))?;
    let public = secret.verifying_key();
    if let Err(e) = write_new(&public_path, public.to_spki_pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(key);
        return Err(e).with_context(|| format!("writing public key {}", public_path.display()));
    }
    tracing::info!(key = %key.display(), %algorithm, hint = %public.hint(), "generated a key pair");
    Ok(public)
}

/// Creates `path` (which must not exist) with exactly `mode`, whatever the umask.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Reads a PKCS#8 PEM private key; warns when group or others may read it.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let ctx = || format!("reading signing key {}", path.display());
    let meta = std::fs::metadata(path).with_context(ctx)?;
    let pem = Zeroizing::new(crate::infile::read_capped(
        path,
        crate::infile::KEY_MAX,
        "signing key",
    )?);
    let key = SigningKey::from_pkcs8_pem(&pem).with_context(ctx)?;
    // Only once it is known to be a private key (a public key passed by mistake is an error
    // about the key, not a warning about its mode).
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            "private key {} is accessible to group or others (mode {mode:04o}); chmod 600 it",
            path.display()
        );
    }
    tracing::debug!(key = %path.display(), algorithm = %key.algorithm(),
        hint = %key.verifying_key().hint(), "loaded signing key");
    Ok(key)
}

/// The manifest signer a `--key` / `[signing] key` value names: a PKCS#8 PEM file, or a key in
/// a PKCS#11 token (`pkcs11:…`, ECDSA P-256).
pub fn load_signer(key: &Path) -> Result<Box<dyn measurements::signer::Signer>> {
    let text = key.to_string_lossy();
    if crate::pkcs11::is_uri(&text) {
        let k = crate::pkcs11::TokenKey::open(&text)?;
        VerifyingKey::from_spki_der(&measurements::signer::Signer::public_key_der(&k))
            .with_context(|| {
                format!(
                    "{}: manifests are signed with Ed25519 or ECDSA P-256 keys",
                    measurements::signer::Signer::describe(&k)
                )
            })?;
        return Ok(Box::new(k));
    }
    Ok(Box::new(read_signing_key(key)?))
}

/// The public key of a signer (one manifests can be signed with).
pub fn public_of(key: &dyn measurements::signer::Signer) -> Result<VerifyingKey> {
    Ok(VerifyingKey::from_spki_der(&key.public_key_der())?)
}

/// Reads an SPKI PEM public key.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let ctx = || format!("reading public key {}", path.display());
    let pem = crate::infile::read_capped(path, crate::infile::KEY_MAX, "public key")?;
    VerifyingKey::from_spki_pem(&pem).with_context(ctx)
}

/// Signs the bytes of a `manifest.json` with `key`: the bundle JSON bytes.
pub fn sign_manifest_bytes(
    manifest: &[u8],
    key: &dyn measurements::signer::Signer,
) -> Result<Vec<u8>> {
    Ok(signing::sign_manifest(key, manifest)?)
}

/// Signs the manifest file at `manifest` with the private key file `key`.
pub fn sign_manifest(manifest: &Path, key: &Path) -> Result<Vec<u8>> {
    let secret = read_signing_key(key)?;
    let bytes = crate::infile::read_capped(manifest, crate::infile::MANIFEST_MAX, "manifest")?;
    sign_manifest_bytes(&bytes, &secret).with_context(|| format!("signing {}", manifest.display()))
}

/// SHA-256 of a file, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// How a build signs its manifest (`[signing]`).
#[derive(Debug)]
pub enum BuildSigner {
    /// A managed key, offline.
    Key(Box<dyn measurements::signer::Signer>),
    /// Through Sigstore services: a managed key with tlog upload (`key` set), or keyless.
    Published {
        key: Option<Box<dyn measurements::signer::Signer>>,
        services: Box<publish::Services>,
        token: publish::TokenSource,
    },
}

/// The build's signer, set up before the build starts so that a bad key, signing config or
/// (keyless) a missing or expired identity token fails fast. Keyless tokens are read again
/// when the build signs: CI tokens live minutes.
pub fn build_signer(cfg: &image_config::ImageConfig) -> Result<Option<BuildSigner>> {
    let at = |what: &str| format!("{}: {what}", cfg.file.display());
    let key = cfg
        .signing_key
        .as_deref()
        .map(load_signer)
        .transpose()
        .with_context(|| at("signing.key"))?;
    let Some(s) = &cfg.sigstore else {
        return Ok(key.map(BuildSigner::Key));
    };
    let services = publish::Services::resolve(&publish::ServiceOptions {
        fulcio_url: s.fulcio_url.clone(),
        rekor_url: s.rekor_url.clone(),
        tsa_url: s.tsa_url.clone(),
        signing_config: s.signing_config.clone(),
        trusted_root: s.trusted_root.clone(),
    })
    .with_context(|| at("[signing]"))?;
    let token = match &s.identity_token_file {
        Some(f) => publish::TokenSource::File(f.clone()),
        None => publish::TokenSource::Environment,
    };
    if s.keyless {
        let explicit = s.identity_token_file.is_some()
            || std::env::var_os("SIGSTORE_ID_TOKEN").is_some_and(|v| !v.is_empty());
        if explicit {
            token.token().with_context(|| at("signing.keyless"))?;
        }
    }
    Ok(Some(BuildSigner::Published {
        key,
        services: Box::new(services),
        token,
    }))
}

/// Signs the manifest file at `manifest` into a new bundle file `bundle` (the build's last
/// stage); returns the bundle's SHA-256 (hex) for SHA256SUMS.
pub fn sign_file_to(manifest: &Path, bundle: &Path, signer: &BuildSigner) -> Result<String> {
    let bytes = crate::infile::read_capped(manifest, crate::infile::MANIFEST_MAX, "manifest")?;
    let ctx = || format!("signing {}", manifest.display());
    let signed = match signer {
        BuildSigner::Key(key) => {
            let signed = sign_manifest_bytes(&bytes, key.as_ref()).with_context(ctx)?;
            tracing::info!(signer = %key.describe(), "signed the manifest");
            signed
        }
        BuildSigner::Published {
            key,
            services,
            token,
        } => {
            let method = match key {
                Some(k) => publish::Method::KeyWithTlog(k.as_ref()),
                None => publish::Method::Keyless(Box::new(token.token().with_context(ctx)?)),
            };
            let (signed, p) = publish::sign(&bytes, &method, services).with_context(ctx)?;
            tracing::info!(identity = ?p.identity, issuer = ?p.issuer, rekor = %p.rekor,
                log_index = p.log_index, verified = p.verified, "signed the manifest");
            signed
        }
    };
    std::fs::write(bundle, &signed).with_context(|| format!("writing {}", bundle.display()))?;
    Ok(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&signed)))
}

#[cfg(test)]
mod tests;
