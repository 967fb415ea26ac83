//! The one signing interface: whatever holds a private key — a key file today, a PKCS#11 token
//! or a KMS later — signs through [`Signer`]. Manifest bundles (Ed25519, ECDSA P-256) and Secure
//! Boot (RSA PKCS#1 v1.5 with SHA-256: Authenticode, authenticated variables, certificates) use
//! it. A signer never exposes its private key; it is asked to sign a *message* (it hashes, as a
//! token's `CKM_SHA256_RSA_PKCS` / `CKM_ECDSA_SHA256` mechanisms do).

use std::fmt;

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::signing::SigningKey;

/// A signature scheme: key type plus hash and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Ed25519 (pure).
    Ed25519,
    /// ECDSA on P-256 with SHA-256, DER-encoded signature.
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384, DER-encoded signature (SEV-SNP ID and author keys).
    EcdsaP384Sha384,
    /// RSA PKCS#1 v1.5 with SHA-256 (`sha256WithRSAEncryption`), with the modulus size in bits.
    RsaPkcs1Sha256 {
        /// Modulus size.
        bits: usize,
    },
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Ed25519 => f.write_str("ed25519"),
            Scheme::EcdsaP256Sha256 => f.write_str("ecdsa-p256-sha256"),
            Scheme::EcdsaP384Sha384 => f.write_str("ecdsa-p384-sha384"),
            Scheme::RsaPkcs1Sha256 { bits } => write!(f, "rsa-{bits} pkcs1v15-sha256"),
        }
    }
}

/// Why a signer failed.
#[derive(Debug, Error)]
pub enum SignerError {
    /// The key material could not be read.
    #[error("{0}")]
    Key(String),
    /// The signing operation failed.
    #[error("signing with {signer}: {why}")]
    Sign {
        /// The signer's description.
        signer: String,
        /// Why.
        why: String,
    },
}

impl fmt::Debug for dyn Signer + '_ {
    /// The description (never key material).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Something that signs messages with a private key it keeps to itself.
pub trait Signer: Send + Sync {
    /// The scheme every signature uses.
    fn scheme(&self) -> Scheme;
    /// The public key as DER `SubjectPublicKeyInfo`.
    fn public_key_der(&self) -> Vec<u8>;
    /// Signs `message` (the signer hashes it as its scheme says).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
    /// Names the key for diagnostics (a file, a token URI), never its secret.
    fn describe(&self) -> String;
}

/// RSA sizes nodeimg makes and accepts for Secure Boot (UEFI requires 2048; edk2 takes up to
/// 4096).
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// An RSA private key held in memory (read from a PEM file).
pub struct RsaKey {
    key: rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    bits: usize,
    label: String,
}

impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaKey({}, {} bits)", self.label, self.bits)
    }
}

impl RsaKey {
    /// A fresh key of `bits` from `rng`.
    pub fn generate(
        rng: &mut impl rand_core::CryptoRngCore,
        bits: usize,
        label: &str,
    ) -> Result<RsaKey, SignerError> {
        if !RSA_BITS.contains(&bits) {
            return Err(SignerError::Key(format!(
                "RSA keys of {bits} bits are not supported (2048-4096)"
            )));
        }
        let key = rsa::RsaPrivateKey::new(rng, bits)
            .map_err(|e| SignerError::Key(format!("generating an RSA-{bits} key: {e}")))?;
        Ok(Self::from_key(key, label))
    }

    fn from_key(key: rsa::RsaPrivateKey, label: &str) -> RsaKey {
        let bits = key.size() * 8;
        RsaKey {
            key: rsa::pkcs1v15::SigningKey::new(key),
            bits,
            label: label.to_string(),
        }
    }

    /// Parses a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM key.
    /// `label` names it in errors (usually the file).
    pub fn from_pem(pem: &[u8], label: &str) -> Result<RsaKey, SignerError> {
        let text = std::str::from_utf8(pem)
            .map_err(|_| SignerError::Key(format!("{label}: not a PEM text file")))?;
        let key = if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            rsa::RsaPrivateKey::from_pkcs1_pem(text)
                .map_err(|e| SignerError::Key(format!("{label}: not a PKCS#1 RSA key: {e}")))?
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            rsa::RsaPrivateKey::from_pkcs8_pem(text).map_err(|e| {
                SignerError::Key(format!(
                    "{label}: not an RSA private key ({e}); Secure Boot signing needs RSA \
                     (2048-4096 bits): UEFI firmware verifies RSA signatures only"
                ))
            })?
        } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(SignerError::Key(format!(
                "{label}: the key is encrypted; decrypt it (openssl pkey -in KEY -out PLAIN) or \
                 keep it in a token"
            )));
        } else {
            return Err(SignerError::Key(format!(
                "{label}: no 'BEGIN PRIVATE KEY' or 'BEGIN RSA PRIVATE KEY' PEM block"
            )));
        };
        let bits = key.size() * 8;
        if !RSA_BITS.contains(&bits) {
            return Err(SignerError::Key(format!(
                "{label}: RSA-{bits} key; Secure Boot keys must have 2048-4096 bits"
            )));
        }
        Ok(Self::from_key(key, label))
    }

    /// The key as PKCS#8 PEM (in a zeroizing buffer).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, SignerError> {
        self.key
            .as_ref()
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| SignerError::Key(format!("encoding {}: {e}", self.label)))
    }
}

impl Signer for RsaKey {
    fn scheme(&self) -> Scheme {
        Scheme::RsaPkcs1Sha256 { bits: self.bits }
    }

    fn public_key_der(&self) -> Vec<u8> {
        self.key
            .as_ref()
            .to_public_key()
            .to_public_key_der()
            .map(|d| d.into_vec())
            .unwrap_or_default()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        use rsa::signature::{SignatureEncoding, Signer as _};
        self.key
            .try_sign(message)
            .map(|s| s.to_vec())
            .map_err(|e| SignerError::Sign {
                signer: self.describe(),
                why: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        format!("{} (RSA-{})", self.label, self.bits)
    }
}

/// An ECDSA P-384 private key held in memory (read from a PEM file): an SEV-SNP ID or author
/// key. Signs with RFC 6979 deterministic nonces, so equal inputs give equal signatures.
pub struct P384Key {
    key: p384::ecdsa::SigningKey,
    label: String,
}

impl fmt::Debug for P384Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P384Key({})", self.label)
    }
}

impl P384Key {
    /// A fresh key from `rng`.
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore, label: &str) -> P384Key {
        P384Key {
            key: p384::ecdsa::SigningKey::random(rng),
            label: label.to_string(),
        }
    }

    /// The key as PKCS#8 PEM (in a zeroizing buffer).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, SignerError> {
        use p384::pkcs8::EncodePrivateKey as _;
        p384::SecretKey::from(&self.key)
            .to_pkcs8_pem(p384::pkcs8::LineEnding::LF)
            .map_err(|e| SignerError::Key(format!("encoding {}: {e}", self.label)))
    }

    /// The public key as SPKI PEM.
    pub fn public_key_pem(&self) -> String {
        pkcs8::der::pem::encode_string(
            "PUBLIC KEY",
            pkcs8::LineEnding::LF,
            &Signer::public_key_der(self),
        )
        .unwrap_or_default()
    }

    /// A key from its 48-byte secret scalar (big-endian); for tests and fixtures.
    pub fn from_bytes(secret: &[u8], label: &str) -> Result<P384Key, SignerError> {
        let key = p384::ecdsa::SigningKey::from_slice(secret)
            .map_err(|e| SignerError::Key(format!("{label}: not a P-384 secret scalar: {e}")))?;
        Ok(P384Key {
            key,
            label: label.to_string(),
        })
    }

    /// Parses a PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`, as `openssl
    /// ecparam -genkey` writes) PEM key. Another key type is refused with its name: `label`
    /// (usually the flag and file) starts the message.
    pub fn from_pem(pem: &[u8], label: &str) -> Result<P384Key, SignerError> {
        use p384::pkcs8::DecodePrivateKey as _;
        let text = std::str::from_utf8(pem)
            .map_err(|_| SignerError::Key(format!("{label}: not a PEM text file")))?;
        let wrong = |found: &str| {
            SignerError::Key(format!(
                "{label}: {found}; the SEV-SNP ID and author keys must be ECDSA P-384 \
                 (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out KEY)"
            ))
        };
        let key = if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            match p384::SecretKey::from_sec1_pem(text) {
                Ok(k) => k,
                Err(_) if p256::SecretKey::from_sec1_pem(text).is_ok() => {
                    return Err(wrong("a P-256 key"))
                }
                Err(e) => return Err(wrong(&format!("not a P-384 SEC1 key ({e})"))),
            }
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            match p384::SecretKey::from_pkcs8_pem(text) {
                Ok(k) => k,
                Err(_) => return Err(wrong(pkcs8_kind(text))),
            }
        } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(SignerError::Key(format!(
                "{label}: the key is encrypted; decrypt it (openssl pkey -in KEY -out PLAIN) or \
                 keep it in a token"
            )));
        } else if text.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(SignerError::Key(format!(
                "{label}: a public key; signing needs the private key"
            )));
        } else if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            return Err(wrong("an RSA key"));
        } else {
            return Err(SignerError::Key(format!(
                "{label}: no 'BEGIN PRIVATE KEY' or 'BEGIN EC PRIVATE KEY' PEM block"
            )));
        };
        Ok(P384Key {
            key: key.into(),
            label: label.to_string(),
        })
    }
}

/// Names the key type of a PKCS#8 PEM text that is not P-384.
fn pkcs8_kind(text: &str) -> &'static str {
    use p256::pkcs8::DecodePrivateKey as _;
    if p256::SecretKey::from_pkcs8_pem(text).is_ok() {
        "a P-256 key"
    } else if ed25519_dalek::SigningKey::from_pkcs8_pem(text).is_ok() {
        "an Ed25519 key"
    } else if rsa::RsaPrivateKey::from_pkcs8_pem(text).is_ok() {
        "an RSA key"
    } else {
        "not an ECDSA P-384 private key"
    }
}

impl Signer for P384Key {
    fn scheme(&self) -> Scheme {
        Scheme::EcdsaP384Sha384
    }

    fn public_key_der(&self) -> Vec<u8> {
        use p384::pkcs8::EncodePublicKey as _;
        self.key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.into_vec())
            .unwrap_or_default()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        use p384::ecdsa::signature::Signer as _;
        let sig: p384::ecdsa::Signature = self.key.sign(message);
        Ok(sig.to_der().as_bytes().to_vec())
    }

    fn describe(&self) -> String {
        format!("{} (ECDSA P-384)", self.label)
    }
}

impl Signer for SigningKey {
    fn scheme(&self) -> Scheme {
        match self.algorithm() {
            crate::signing::Algorithm::Ed25519 => Scheme::Ed25519,
            crate::signing::Algorithm::EcdsaP256 => Scheme::EcdsaP256Sha256,
        }
    }

    fn public_key_der(&self) -> Vec<u8> {
        self.verifying_key().spki_der()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(SigningKey::sign(self, message))
    }

    fn describe(&self) -> String {
        format!("{} key {}", self.algorithm(), self.verifying_key().hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_pkcs1v15_is_deterministic_and_verifies() {
        let k = RsaKey::generate(&mut rand_core::OsRng, 2048, "test").unwrap();
        let a = k.sign(b"message").unwrap();
        assert_eq!(a, k.sign(b"message").unwrap());
        assert_eq!(a.len(), 256);
        use rsa::pkcs8::DecodePublicKey;
        use rsa::signature::Verifier;
        let public = rsa::RsaPublicKey::from_public_key_der(&k.public_key_der()).unwrap();
        let v = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public);
        let sig = rsa::pkcs1v15::Signature::try_from(a.as_slice()).unwrap();
        v.verify(b"message", &sig).unwrap();
        assert!(v.verify(b"messagf", &sig).is_err());
        // PEM round trip.
        let pem = k.to_pkcs8_pem().unwrap();
        let back = RsaKey::from_pem(pem.as_bytes(), "again").unwrap();
        assert_eq!(back.sign(b"message").unwrap(), a);
    }

    #[test]
    fn non_rsa_and_odd_keys_are_refused_with_the_reason() {
        let ed =
            crate::signing::SigningKey::from_seed(crate::signing::Algorithm::Ed25519, &[7; 32])
                .unwrap();
        let pem = ed.to_pkcs8_pem().unwrap();
        let e = RsaKey::from_pem(pem.as_bytes(), "ed.key")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ed.key") && e.contains("RSA"), "{e}");
        let e = RsaKey::from_pem(b"-----BEGIN CERTIFICATE-----\n", "c.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no 'BEGIN PRIVATE KEY'"), "{e}");
        let e = RsaKey::from_pem(&[0xff, 0xfe], "bin")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a PEM"), "{e}");
        let e = RsaKey::generate(&mut rand_core::OsRng, 1024, "small")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1024"), "{e}");
    }
}
