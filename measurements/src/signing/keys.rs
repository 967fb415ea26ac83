//! Signing keys: Ed25519 (pure RFC 8032) and ECDSA P-256 (SHA-256, ASN.1 DER signatures),
//! as cosign 2.5 signs and verifies them. Private keys are unencrypted PKCS#8 PEM
//! (`PRIVATE KEY`, as `openssl genpkey` writes them), public keys SPKI PEM (`PUBLIC KEY`).
//!
//! Secret material never leaves this module except through [`SigningKey::to_pkcs8_pem`]
//! (a zeroizing string): `Debug` shows the algorithm and the public key's hint only, and
//! no error carries input bytes.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::pkcs8::KeypairBytes;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::signature::{Signer, Verifier};
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, ObjectIdentifier};
use sha2::{Digest, Sha256};
use spki::DecodePublicKey;
use zeroize::Zeroizing;

use super::KeyError;

const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// A signature algorithm nodeimg signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Pure Ed25519 (no prehash, no context).
    Ed25519,
    /// ECDSA on NIST P-256 over SHA-256, signatures ASN.1 DER encoded.
    EcdsaP256,
}

impl Algorithm {
    /// The name used on the command line and in reports: `ed25519`, `ecdsa-p256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A private signing key.
pub struct SigningKey(Secret);

enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public = self.verifying_key();
        f.debug_struct("SigningKey")
            .field("algorithm", &public.algorithm())
            .field("public_key_hint", &public.hint())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Derives a key from 32 secret bytes (fresh randomness from the caller): the Ed25519
    /// seed, or the P-256 scalar (rejected with [`KeyError::SeedOutOfRange`] when it is zero
    /// or not below the group order; draw new bytes and retry).
    pub fn from_seed(algorithm: Algorithm, seed: &[u8; 32]) -> Result<Self, KeyError> {
        Ok(SigningKey(match algorithm {
            Algorithm::Ed25519 => Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed)),
            Algorithm::EcdsaP256 => Secret::P256(
                p256::ecdsa::SigningKey::from_slice(seed).map_err(|_| KeyError::SeedOutOfRange)?,
            ),
        }))
    }

    /// Parses an unencrypted PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem).map_err(|e| KeyError::Pem {
            expected: "PRIVATE KEY",
            reason: e.to_string(),
        })?;
        let der = Zeroizing::new(der);
        if label != "PRIVATE KEY" {
            return Err(wrong_label("PRIVATE KEY", label));
        }
        let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| KeyError::Der {
            what: "PKCS#8 PrivateKeyInfo",
            reason: e.to_string(),
        })?;
        let der_err = |e: pkcs8::Error| KeyError::Der {
            what: "PKCS#8 private key",
            reason: e.to_string(),
        };
        match identify(info.algorithm.oid, info.algorithm.parameters_oid().ok())? {
            Algorithm::Ed25519 => Ok(SigningKey(Secret::Ed25519(
                ed25519_dalek::SigningKey::from_pkcs8_der(&der).map_err(der_err)?,
            ))),
            Algorithm::EcdsaP256 => Ok(SigningKey(Secret::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(&der).map_err(der_err)?,
            ))),
        }
    }

    /// The key as PKCS#8 PEM: v1 (`openssl genpkey` layout) for Ed25519, RFC 5915 inside
    /// PKCS#8 for P-256.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let doc = match &self.0 {
            Secret::Ed25519(k) => KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_der(),
            Secret::P256(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| KeyError::Encode(e.to_string()))?;
        doc.to_pem("PRIVATE KEY", LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self.0 {
            Secret::Ed25519(_) => Algorithm::Ed25519,
            Secret::P256(_) => Algorithm::EcdsaP256,
        }
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(match &self.0 {
            Secret::Ed25519(k) => Public::Ed25519(k.verifying_key()),
            Secret::P256(k) => Public::P256(*k.verifying_key()),
        })
    }

    /// Signs `message`: pure Ed25519 over the bytes, or a DER ECDSA signature over their
    /// SHA-256 (RFC 6979 deterministic nonces, so the output is reproducible), always in low-S
    /// form (`s ≤ n/2`), which strict verifiers (BoringSSL-based, Go's `ecdsa` with
    /// malleability checks) require.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.0 {
            Secret::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            Secret::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.normalize_s()
                    .unwrap_or(sig)
                    .to_der()
                    .as_bytes()
                    .to_vec()
            }
        }
    }
}

/// A public key a verifier pins.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey(Public);

#[derive(Clone, PartialEq, Eq)]
enum Public {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm())
            .field("hint", &self.hint())
            .finish()
    }
}

impl VerifyingKey {
    /// Parses an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout`
    /// and `cosign generate-key-pair` write them).
    pub fn from_spki_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem).map_err(|e| KeyError::Pem {
            expected: "PUBLIC KEY",
            reason: e.to_string(),
        })?;
        if label != "PUBLIC KEY" {
            return Err(wrong_label("PUBLIC KEY", label));
        }
        Self::from_spki_der(&der)
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(|e| KeyError::Der {
            what: "SubjectPublicKeyInfo",
            reason: e.to_string(),
        })?;
        let der_err = |e: spki::Error| KeyError::Der {
            what: "public key",
            reason: e.to_string(),
        };
        Ok(VerifyingKey(
            match identify(info.algorithm.oid, info.algorithm.parameters_oid().ok())? {
                Algorithm::Ed25519 => Public::Ed25519(
                    ed25519_dalek::VerifyingKey::from_public_key_der(der).map_err(der_err)?,
                ),
                Algorithm::EcdsaP256 => Public::P256(
                    p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(der_err)?,
                ),
            },
        ))
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self.0 {
            Public::Ed25519(_) => Algorithm::Ed25519,
            Public::P256(_) => Algorithm::EcdsaP256,
        }
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        let doc = match &self.0 {
            Public::Ed25519(k) => k.to_public_key_der(),
            Public::P256(k) => k.to_public_key_der(),
        };
        // Encoding a valid in-memory key cannot fail.
        doc.map(|d| d.into_vec()).unwrap_or_default()
    }

    /// The SPKI PEM text (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_spki_pem(&self) -> String {
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.spki_der())
            .unwrap_or_default()
    }

    /// base64(SHA-256(SPKI DER)): the Sigstore bundle's `verificationMaterial.publicKey.hint`,
    /// as cosign computes it.
    pub fn hint(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(self.spki_der()))
    }

    /// Checks `signature` over `message` (pure Ed25519 in its strict form, or DER ECDSA over
    /// SHA-256(message)).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match &self.0 {
            Public::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::Encoding(ed25519_length(signature)))?;
                k.verify_strict(message, &sig)
                    .map_err(|_| SignatureError::Mismatch)
            }
            Public::P256(k) => {
                let sig = p256_der(signature)?;
                k.verify(message, &sig)
                    .map_err(|_| SignatureError::Mismatch)
            }
        }
    }

    /// Checks a signature given the message's SHA-256 only. ECDSA P-256 only: pure Ed25519
    /// signs the message itself, so a digest is not enough.
    pub fn verify_sha256(&self, digest: &[u8; 32], signature: &[u8]) -> Result<(), SignatureError> {
        match &self.0 {
            Public::Ed25519(_) => Err(SignatureError::NeedsMessage),
            Public::P256(k) => {
                let sig = p256_der(signature)?;
                k.verify_prehash(digest, &sig)
                    .map_err(|_| SignatureError::Mismatch)
            }
        }
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature bytes are not a well-formed signature for the key's algorithm.
    #[error("the signature is malformed: {0}")]
    Encoding(String),
    /// Well-formed, but not made by this key over these bytes.
    #[error("the signature does not verify with this key")]
    Mismatch,
    /// Ed25519 cannot be checked against a digest.
    #[error("an Ed25519 signature can only be checked against the whole message")]
    NeedsMessage,
}

fn p256_der(signature: &[u8]) -> Result<p256::ecdsa::Signature, SignatureError> {
    p256::ecdsa::Signature::from_der(signature).map_err(|_| {
        SignatureError::Encoding(format!(
            "{} bytes that are not an ASN.1 DER ECDSA-Sig-Value for P-256",
            signature.len()
        ))
    })
}

fn ed25519_length(signature: &[u8]) -> String {
    format!("{} bytes, expected 64 for Ed25519", signature.len())
}

fn identify(
    oid: ObjectIdentifier,
    params: Option<ObjectIdentifier>,
) -> Result<Algorithm, KeyError> {
    match (oid, params) {
        (OID_ED25519, _) => Ok(Algorithm::Ed25519),
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => Ok(Algorithm::EcdsaP256),
        (OID_EC_PUBLIC_KEY, curve) => Err(KeyError::Unsupported(format!(
            "EC key on curve {}",
            curve.map_or_else(|| "(none given)".to_string(), |c| c.to_string())
        ))),
        (other, _) => Err(KeyError::Unsupported(format!("algorithm OID {other}"))),
    }
}

fn wrong_label(expected: &'static str, found: &str) -> KeyError {
    let hint = match found {
        "ENCRYPTED SIGSTORE PRIVATE KEY" => {
            "cosign's encrypted key format is not supported; use `nodeimg keygen` or an unencrypted PKCS#8 key (openssl genpkey)"
        }
        "ENCRYPTED PRIVATE KEY" => {
            "encrypted PKCS#8 is not supported; decrypt it with `openssl pkcs8 -in KEY -out PLAIN`"
        }
        "EC PRIVATE KEY" => "convert the SEC1 key with `openssl pkcs8 -topk8 -nocrypt -in KEY`",
        "PRIVATE KEY" => "this is a private key; pass the public key (KEY.pub)",
        "PUBLIC KEY" => "this is a public key; pass the private key",
        _ => "expected a PEM file written by `nodeimg keygen` or openssl",
    };
    KeyError::Label {
        expected,
        found: found.chars().take(40).collect(),
        hint,
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
