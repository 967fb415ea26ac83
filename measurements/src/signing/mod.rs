//! Signed measurements: a DSSE envelope carrying an in-toto Statement v1 about a nodeimg
//! manifest, inside a Sigstore bundle v0.3 — the format `cosign verify-blob-attestation`
//! checks offline with a pinned key.
//!
//! * [`keys`]: Ed25519 / ECDSA P-256 keys (PKCS#8 and SPKI PEM), the bundle key hint.
//! * [`dsse`]: the pre-authentication encoding (PAE) and the envelope.
//! * [`statement`]: the in-toto Statement built from `manifest.json` bytes. Subjects are the
//!   manifest's artifacts plus `manifest.json` itself, by SHA-256; the predicate (type
//!   [`PREDICATE_TYPE`]) is the manifest object itself, so every measurement field it has —
//!   `pcrs`, `pcr11_phases`, `events`, `snp`, `tdx`, `verity.root_hash`, and fields added
//!   later — is signed and compared without this code knowing them.
//! * [`bundle`]: the Sigstore bundle JSON.
//! * [`verify`]: the checks a verifier runs, one function each, so a caller can report every
//!   check separately; [`verify::verify`] runs them all.
//!
//! Everything is bytes in, bytes out: no file access, no clock, no randomness (keys are
//! derived from caller-supplied seeds; both signature schemes are deterministic, so the same
//! key and manifest give the same bundle bytes).

pub mod bundle;
pub mod dsse;
mod error;
pub mod keys;
pub mod statement;
pub mod verify;

pub use bundle::Bundle;
pub use error::{Error, KeyError};
pub use keys::{Algorithm, SignatureError, SigningKey, VerifyingKey};
pub use statement::{ManifestDoc, Statement};

/// The in-toto predicate type of a nodeimg measurement statement. The predicate is the
/// `manifest.json` object (schema `nodeimg.manifest/v1`).
pub const PREDICATE_TYPE: &str = "https://nodeimg.dev/measurements/v1";

/// The subject name under which the manifest itself is signed.
pub const MANIFEST_SUBJECT: &str = "manifest.json";

/// Signs `manifest` (the exact bytes of `manifest.json`) and returns the Sigstore bundle
/// v0.3 JSON (pretty-printed, with a final newline).
pub fn sign_manifest(key: &dyn crate::signer::Signer, manifest: &[u8]) -> Result<Vec<u8>, Error> {
    // The bundle names the key by its hint; only key types a verifier here accepts are used.
    let public = VerifyingKey::from_spki_der(&key.public_key_der())?;
    let envelope = manifest_envelope(key, manifest)?;
    Ok(Bundle::with_envelope(&public, envelope).to_bytes())
}

/// The DSSE envelope `key` signs for `manifest`: the in-toto statement over the manifest's
/// artifacts with the manifest as predicate (what every nodeimg bundle carries, whatever its
/// verification material).
pub fn manifest_envelope(
    key: &dyn crate::signer::Signer,
    manifest: &[u8],
) -> Result<dsse::Envelope, Error> {
    let doc = ManifestDoc::parse(manifest)?;
    let payload = Statement::for_manifest(&doc).to_bytes();
    dsse::Envelope::sign(key, dsse::INTOTO_PAYLOAD_TYPE, &payload)
}

#[cfg(test)]
mod tests;
