//! The SEV-SNP ID block and ID authentication information (SNP ABI spec, `SNP_LAUNCH_FINISH`,
//! tables "ID_BLOCK" and "ID_AUTH_INFO"): the image owner signs {launch digest, family id,
//! image id, guest SVN, policy} with an ECDSA P-384 ID key, optionally endorsed by an author
//! key, and the PSP refuses to finish a launch whose digest or policy differ.
//!
//! Byte layouts (all integers little-endian), as sev-snp-measure 0.0.13 `id_block.py` writes
//! them:
//!
//! * ID block, 0x60 bytes: `LD` (48) ‖ `FAMILY_ID` (16) ‖ `IMAGE_ID` (16) ‖ `VERSION` u32 = 1 ‖
//!   `GUEST_SVN` u32 ‖ `POLICY` u64.
//! * ID auth info, 0x1000 bytes: `ID_KEY_ALGO` u32 @0 (1 = ECDSA P-384 with SHA-384),
//!   `AUTHOR_KEY_ALGO` u32 @4, `ID_BLOCK_SIG` @0x40, `ID_KEY` @0x240, `ID_KEY_SIG` @0x680 (the
//!   author key's signature over the 0x404-byte `ID_KEY`), `AUTHOR_KEY` @0x880; reserved bytes
//!   zero.
//! * Signature (0x200): `R` (72) ‖ `S` (72), little-endian, zero-padded; the rest zero.
//! * Public key (0x404): `CURVE` u32 = 2 (P-384) ‖ `QX` (72) ‖ `QY` (72), little-endian,
//!   zero-padded; the rest zero. The attestation report's `ID_KEY_DIGEST` and
//!   `AUTHOR_KEY_DIGEST` are SHA-384 of these 0x404 bytes.
//!
//! Signing goes through [`Signer`] (a PEM file key signs with RFC 6979 deterministic nonces,
//! so the same inputs give the same bytes; a token key may not).

use p384::ecdsa::signature::Verifier as _;
use sha2::{Digest as _, Sha384};
use thiserror::Error;

use super::digest::SnpMeasurement;
use super::policy::{PolicyError, SnpPolicy};
use crate::signer::{Scheme, Signer};

/// Size of the ID block.
pub const ID_BLOCK_LEN: usize = 0x60;
/// Size of the ID authentication information structure.
pub const ID_AUTH_LEN: usize = 0x1000;
/// Size of an AMD public key structure (`ID_KEY`, `AUTHOR_KEY`).
pub const PUBLIC_KEY_LEN: usize = 0x404;
/// `ID_KEY_ALGO` / `AUTHOR_KEY_ALGO` of ECDSA P-384 with SHA-384.
pub const ALGO_ECDSA_P384_SHA384: u32 = 1;
/// `CURVE` of P-384.
pub const CURVE_P384: u32 = 2;
/// The ID block version this module writes and reads.
pub const ID_BLOCK_VERSION: u32 = 1;

const SIG_LEN: usize = 0x200;
const ID_BLOCK_SIG: usize = 0x40;
const ID_KEY: usize = 0x240;
const ID_KEY_SIG: usize = 0x680;
const AUTHOR_KEY: usize = 0x880;
/// Field width of one coordinate or signature half (72 bytes; P-384 uses the low 48).
const COORD: usize = 0x48;

/// Why an ID block or ID auth structure could not be made, read or verified.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdBlockError {
    /// A key that is not ECDSA P-384.
    #[error("{found}; SEV-SNP ID and author keys must be ECDSA P-384")]
    KeyType {
        /// What the key is ("a P-256 key").
        found: String,
    },
    /// A structure of the wrong size.
    #[error("{what}: {found} bytes, expected {expected}")]
    Length {
        /// The structure.
        what: &'static str,
        /// Its required size.
        expected: usize,
        /// What was given.
        found: usize,
    },
    /// A field with a value the format does not allow.
    #[error("{what}: {why}")]
    Field {
        /// The field.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The policy inside an ID block.
    #[error("the ID block's policy: {0}")]
    Policy(#[from] PolicyError),
    /// A signature that does not verify.
    #[error("{0} does not verify")]
    Signature(&'static str),
    /// The signer failed.
    #[error("{0}")]
    Signer(String),
}

type Result<T> = std::result::Result<T, IdBlockError>;

/// The ID block: what the ID key vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdBlock {
    /// The expected launch digest.
    pub launch_digest: SnpMeasurement,
    /// `FAMILY_ID`: chosen by the owner, reported by the PSP.
    pub family_id: [u8; 16],
    /// `IMAGE_ID`: chosen by the owner, reported by the PSP.
    pub image_id: [u8; 16],
    /// `GUEST_SVN`: the owner's security version number of the image.
    pub guest_svn: u32,
    /// The guest policy the launch must use.
    pub policy: SnpPolicy,
}

impl IdBlock {
    /// The 0x60 bytes.
    pub fn to_bytes(&self) -> [u8; ID_BLOCK_LEN] {
        let mut b = [0; ID_BLOCK_LEN];
        b[..48].copy_from_slice(self.launch_digest.as_bytes());
        b[48..64].copy_from_slice(&self.family_id);
        b[64..80].copy_from_slice(&self.image_id);
        b[80..84].copy_from_slice(&ID_BLOCK_VERSION.to_le_bytes());
        b[84..88].copy_from_slice(&self.guest_svn.to_le_bytes());
        b[88..96].copy_from_slice(&self.policy.value().to_le_bytes());
        b
    }

    /// Reads an ID block (version 1; policy reserved bits checked).
    pub fn parse(b: &[u8]) -> Result<IdBlock> {
        let b: &[u8; ID_BLOCK_LEN] = b.try_into().map_err(|_| IdBlockError::Length {
            what: "ID block",
            expected: ID_BLOCK_LEN,
            found: b.len(),
        })?;
        let version = u32::from_le_bytes(b[80..84].try_into().unwrap_or_default());
        if version != ID_BLOCK_VERSION {
            return Err(IdBlockError::Field {
                what: "ID block VERSION",
                why: format!("{version}, expected {ID_BLOCK_VERSION}"),
            });
        }
        let mut ld = [0; 48];
        ld.copy_from_slice(&b[..48]);
        let mut family_id = [0; 16];
        family_id.copy_from_slice(&b[48..64]);
        let mut image_id = [0; 16];
        image_id.copy_from_slice(&b[64..80]);
        let mut svn = [0; 4];
        svn.copy_from_slice(&b[84..88]);
        let mut policy = [0; 8];
        policy.copy_from_slice(&b[88..96]);
        Ok(IdBlock {
            launch_digest: SnpMeasurement(ld),
            family_id,
            image_id,
            guest_svn: u32::from_le_bytes(svn),
            policy: SnpPolicy::new(u64::from_le_bytes(policy))?,
        })
    }
}

/// An ECDSA P-384 public key (an ID or author key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdPublicKey(p384::PublicKey);

impl IdPublicKey {
    /// From a DER SubjectPublicKeyInfo; any other key type is an error that names it.
    pub fn from_spki_der(der: &[u8]) -> Result<IdPublicKey> {
        use p384::pkcs8::DecodePublicKey as _;
        p384::PublicKey::from_public_key_der(der)
            .map(IdPublicKey)
            .map_err(|_| IdBlockError::KeyType {
                found: spki_kind(der),
            })
    }

    /// From an SPKI PEM text (`BEGIN PUBLIC KEY`).
    pub fn from_spki_pem(pem: &str) -> Result<IdPublicKey> {
        let (label, der) =
            pkcs8::der::pem::decode_vec(pem.as_bytes()).map_err(|e| IdBlockError::Field {
                what: "public key",
                why: format!("not PEM ({e})"),
            })?;
        if label != "PUBLIC KEY" {
            return Err(IdBlockError::Field {
                what: "public key",
                why: format!(
                    "the PEM block is `{label}`, expected `PUBLIC KEY` (openssl pkey -in KEY \
                     -pubout)"
                ),
            });
        }
        Self::from_spki_der(&der)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        use p384::pkcs8::EncodePublicKey as _;
        self.0
            .to_public_key_der()
            .map(|d| d.into_vec())
            .unwrap_or_default()
    }

    /// AMD's 0x404-byte public key structure.
    pub fn to_amd(&self) -> [u8; PUBLIC_KEY_LEN] {
        use p384::elliptic_curve::sec1::ToEncodedPoint as _;
        let point = self.0.to_encoded_point(false);
        let mut b = [0; PUBLIC_KEY_LEN];
        b[..4].copy_from_slice(&CURVE_P384.to_le_bytes());
        if let (Some(x), Some(y)) = (point.x(), point.y()) {
            b[4..4 + 48].copy_from_slice(&le(x));
            b[4 + COORD..4 + COORD + 48].copy_from_slice(&le(y));
        }
        b
    }

    /// Reads AMD's public key structure (curve P-384, a point on the curve).
    pub fn from_amd(b: &[u8], what: &'static str) -> Result<IdPublicKey> {
        if b.len() != PUBLIC_KEY_LEN {
            return Err(IdBlockError::Length {
                what,
                expected: PUBLIC_KEY_LEN,
                found: b.len(),
            });
        }
        let curve = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if curve != CURVE_P384 {
            return Err(IdBlockError::Field {
                what,
                why: format!("curve {curve}, expected {CURVE_P384} (P-384)"),
            });
        }
        let x = field_be(&b[4..4 + COORD], what)?;
        let y = field_be(&b[4 + COORD..4 + 2 * COORD], what)?;
        let point = p384::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
        use p384::elliptic_curve::sec1::FromEncodedPoint as _;
        Option::from(p384::PublicKey::from_encoded_point(&point))
            .map(IdPublicKey)
            .ok_or(IdBlockError::Field {
                what,
                why: "not a point on P-384".into(),
            })
    }

    /// SHA-384 of [`IdPublicKey::to_amd`]: the report's `ID_KEY_DIGEST` / `AUTHOR_KEY_DIGEST`.
    pub fn digest(&self) -> [u8; 48] {
        Sha384::digest(self.to_amd()).into()
    }

    fn verify(&self, message: &[u8], sig: &Signature, what: &'static str) -> Result<()> {
        let key = p384::ecdsa::VerifyingKey::from(&self.0);
        let s = p384::ecdsa::Signature::from_scalars(sig.r, sig.s)
            .map_err(|_| IdBlockError::Signature(what))?;
        key.verify(message, &s)
            .map_err(|_| IdBlockError::Signature(what))
    }
}

/// An ECDSA P-384 signature (big-endian r and s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// r, big-endian.
    pub r: [u8; 48],
    /// s, big-endian.
    pub s: [u8; 48],
}

impl Signature {
    fn to_amd(self) -> [u8; SIG_LEN] {
        let mut b = [0; SIG_LEN];
        b[..48].copy_from_slice(&le(&self.r));
        b[COORD..COORD + 48].copy_from_slice(&le(&self.s));
        b
    }

    fn from_amd(b: &[u8], what: &'static str) -> Result<Signature> {
        Ok(Signature {
            r: field_be(&b[..COORD], what)?,
            s: field_be(&b[COORD..2 * COORD], what)?,
        })
    }
}

/// The ID authentication information: the ID block's signature, the ID key, and optionally
/// the author key and its signature over the ID key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdAuth {
    /// The ID key's signature over the 0x60-byte ID block.
    pub block_sig: Signature,
    /// The ID key.
    pub id_key: IdPublicKey,
    /// The author key and its signature over the ID key's AMD structure (`AUTHOR_KEY_EN`).
    pub author: Option<(IdPublicKey, Signature)>,
}

impl IdAuth {
    /// The 0x1000 bytes. Without an author key, `AUTHOR_KEY_ALGO`, `ID_KEY_SIG` and
    /// `AUTHOR_KEY` are zero (QEMU `author-key-enabled=off`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0; ID_AUTH_LEN];
        b[..4].copy_from_slice(&ALGO_ECDSA_P384_SHA384.to_le_bytes());
        b[ID_BLOCK_SIG..ID_BLOCK_SIG + SIG_LEN].copy_from_slice(&self.block_sig.to_amd());
        b[ID_KEY..ID_KEY + PUBLIC_KEY_LEN].copy_from_slice(&self.id_key.to_amd());
        if let Some((key, sig)) = &self.author {
            b[4..8].copy_from_slice(&ALGO_ECDSA_P384_SHA384.to_le_bytes());
            b[ID_KEY_SIG..ID_KEY_SIG + SIG_LEN].copy_from_slice(&sig.to_amd());
            b[AUTHOR_KEY..AUTHOR_KEY + PUBLIC_KEY_LEN].copy_from_slice(&key.to_amd());
        }
        b
    }

    /// Reads the structure: `ID_KEY_ALGO` must be 1, `AUTHOR_KEY_ALGO` 0 (no author key) or 1.
    /// Signatures are not checked here ([`IdAuth::verify`]).
    pub fn parse(b: &[u8]) -> Result<IdAuth> {
        if b.len() != ID_AUTH_LEN {
            return Err(IdBlockError::Length {
                what: "ID auth",
                expected: ID_AUTH_LEN,
                found: b.len(),
            });
        }
        let algo = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let id_algo = algo(0);
        if id_algo != ALGO_ECDSA_P384_SHA384 {
            return Err(IdBlockError::Field {
                what: "ID auth ID_KEY_ALGO",
                why: format!("{id_algo}, expected 1 (ECDSA P-384 with SHA-384)"),
            });
        }
        let author = match algo(4) {
            0 => None,
            ALGO_ECDSA_P384_SHA384 => Some((
                IdPublicKey::from_amd(
                    &b[AUTHOR_KEY..AUTHOR_KEY + PUBLIC_KEY_LEN],
                    "ID auth AUTHOR_KEY",
                )?,
                Signature::from_amd(&b[ID_KEY_SIG..ID_KEY_SIG + SIG_LEN], "ID auth ID_KEY_SIG")?,
            )),
            other => {
                return Err(IdBlockError::Field {
                    what: "ID auth AUTHOR_KEY_ALGO",
                    why: format!("{other}, expected 0 (no author key) or 1 (ECDSA P-384)"),
                })
            }
        };
        Ok(IdAuth {
            block_sig: Signature::from_amd(
                &b[ID_BLOCK_SIG..ID_BLOCK_SIG + SIG_LEN],
                "ID auth ID_BLOCK_SIG",
            )?,
            id_key: IdPublicKey::from_amd(&b[ID_KEY..ID_KEY + PUBLIC_KEY_LEN], "ID auth ID_KEY")?,
            author,
        })
    }

    /// Checks what the PSP checks: the block signature with the ID key inside, and (with an
    /// author key) the author's signature over the ID key.
    pub fn verify(&self, block: &IdBlock) -> Result<()> {
        self.id_key.verify(
            &block.to_bytes(),
            &self.block_sig,
            "the ID block signature (ID_BLOCK_SIG) with the ID key in the ID auth",
        )?;
        if let Some((key, sig)) = &self.author {
            key.verify(
                &self.id_key.to_amd(),
                sig,
                "the author key's signature over the ID key (ID_KEY_SIG)",
            )?;
        }
        Ok(())
    }
}

/// The public key of a signer, if it is ECDSA P-384.
pub fn signer_key(s: &dyn Signer) -> Result<IdPublicKey> {
    if s.scheme() != Scheme::EcdsaP384Sha384 {
        return Err(IdBlockError::KeyType {
            found: format!("{} is a {} key", s.describe(), s.scheme()),
        });
    }
    IdPublicKey::from_spki_der(&s.public_key_der())
}

/// Signs `block` with the ID key and, when given, the ID key with the author key. The result
/// is verified before it is returned (a token that signs wrongly is caught here).
pub fn sign(block: &IdBlock, id: &dyn Signer, author: Option<&dyn Signer>) -> Result<IdAuth> {
    let id_key = signer_key(id)?;
    let author = match author {
        Some(a) => {
            let key = signer_key(a)?;
            Some((key, sign_with(a, &id_key.to_amd())?))
        }
        None => None,
    };
    let auth = IdAuth {
        block_sig: sign_with(id, &block.to_bytes())?,
        id_key,
        author,
    };
    auth.verify(block)?;
    Ok(auth)
}

fn sign_with(s: &dyn Signer, message: &[u8]) -> Result<Signature> {
    let der = s
        .sign(message)
        .map_err(|e| IdBlockError::Signer(e.to_string()))?;
    let sig = p384::ecdsa::Signature::from_der(&der).map_err(|e| {
        IdBlockError::Signer(format!(
            "{} returned no DER P-384 signature: {e}",
            s.describe()
        ))
    })?;
    Ok(Signature {
        r: sig.r().to_bytes().into(),
        s: sig.s().to_bytes().into(),
    })
}

/// A big-endian 48-byte value reversed (little-endian).
fn le(be: &[u8]) -> [u8; 48] {
    let mut out = [0; 48];
    for (o, b) in out.iter_mut().zip(be.iter().rev()) {
        *o = *b;
    }
    out
}

/// A 72-byte little-endian field as a big-endian 48-byte value (the top 24 bytes must be 0).
fn field_be(b: &[u8], what: &'static str) -> Result<[u8; 48]> {
    if b[48..].iter().any(|&x| x != 0) {
        return Err(IdBlockError::Field {
            what,
            why: "a value wider than 384 bits".into(),
        });
    }
    Ok(le(&b[..48]))
}

/// What kind of key an SPKI is, for the error message.
pub fn spki_kind(der: &[u8]) -> String {
    use const_oid::db::rfc5912::{
        ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1, SECP_521_R_1,
    };
    use const_oid::db::rfc8410::ID_ED_25519;
    let Ok(info) = spki::SubjectPublicKeyInfoRef::try_from(der) else {
        return "not a DER SubjectPublicKeyInfo".into();
    };
    match (info.algorithm.oid, info.algorithm.parameters_oid().ok()) {
        (ID_EC_PUBLIC_KEY, Some(SECP_256_R_1)) => "a P-256 key".into(),
        (ID_EC_PUBLIC_KEY, Some(SECP_384_R_1)) => "a P-384 key with an invalid point".into(),
        (ID_EC_PUBLIC_KEY, Some(SECP_521_R_1)) => "a P-521 key".into(),
        (ID_EC_PUBLIC_KEY, c) => format!(
            "an EC key on curve {}",
            c.map_or("?".into(), |c| c.to_string())
        ),
        (ID_ED_25519, _) => "an Ed25519 key".into(),
        (RSA_ENCRYPTION, _) => "an RSA key".into(),
        (oid, _) => format!("a key of algorithm {oid}"),
    }
}

#[cfg(test)]
mod tests {
    //! Against `idblock-oracle.txt`: sev-snp-measure 0.0.13 `snp-create-id-block` output for
    //! `idkey.pem` / `authorkey.pem` (`tests/data/cvm/make-idblock-fixtures.sh`).
    use base64::Engine as _;

    use super::*;
    use crate::signer::P384Key;

    const ID_PEM: &str = include_str!("../../tests/data/cvm/idkey.pem");
    const AUTHOR_PEM: &str = include_str!("../../tests/data/cvm/authorkey.pem");
    const P256_KEY: &str = include_str!("../../tests/data/cvm/p256key.pem");
    const ORACLE: &str = include_str!("../../tests/data/cvm/idblock-oracle.txt");
    const LD: &str = "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d";

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .unwrap()
    }

    /// (id block, id auth, id key digest, author key digest) as the oracle printed them.
    fn oracle() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut lines = ORACLE.lines();
        let first = lines.next().unwrap();
        let (block, auth) = first.split_once(",id-auth=").unwrap();
        let block = b64(block.strip_prefix("id-block=").unwrap());
        let id = b64(lines.next().unwrap().strip_prefix("id_key_hash: ").unwrap());
        let author = b64(lines.next().unwrap().strip_prefix("author_key: ").unwrap());
        (block, b64(auth), id, author)
    }

    fn keys() -> (P384Key, P384Key) {
        (
            P384Key::from_pem(ID_PEM.as_bytes(), "idkey.pem").unwrap(),
            P384Key::from_pem(AUTHOR_PEM.as_bytes(), "authorkey.pem").unwrap(),
        )
    }

    fn block() -> IdBlock {
        IdBlock {
            launch_digest: SnpMeasurement::from_hex("ld", LD).unwrap(),
            family_id: [0; 16],
            image_id: [0; 16],
            guest_svn: 0,
            policy: SnpPolicy::default(),
        }
    }

    #[test]
    fn id_block_is_the_oracles_byte_for_byte() {
        let (want, ..) = oracle();
        assert_eq!(block().to_bytes().as_slice(), want.as_slice());
        assert_eq!(IdBlock::parse(&want).unwrap(), block());
    }

    #[test]
    fn id_auth_matches_the_oracle_field_by_field_and_signatures_cross_verify() {
        let (block_bytes, theirs, id_digest, author_digest) = oracle();
        let (id, author) = keys();
        let ours = sign(&block(), &id, Some(&author)).unwrap();
        let ours_bytes = ours.to_bytes();
        assert_eq!(ours_bytes.len(), ID_AUTH_LEN);
        // Everything but the two signatures is byte-identical.
        let sigs = [
            ID_BLOCK_SIG..ID_BLOCK_SIG + SIG_LEN,
            ID_KEY_SIG..ID_KEY_SIG + SIG_LEN,
        ];
        for (i, (a, b)) in ours_bytes.iter().zip(&theirs).enumerate() {
            if !sigs.iter().any(|r| r.contains(&i)) {
                assert_eq!(a, b, "ID auth byte {i:#x}");
            }
        }
        // Their signatures verify with our code; ours with the same keys they hold.
        let parsed = IdAuth::parse(&theirs).unwrap();
        parsed
            .verify(&IdBlock::parse(&block_bytes).unwrap())
            .unwrap();
        assert_eq!(parsed.id_key, ours.id_key);
        assert_eq!(parsed.id_key.digest().as_slice(), id_digest.as_slice());
        assert_eq!(
            parsed.author.unwrap().0.digest().as_slice(),
            author_digest.as_slice()
        );
        // Signature reserved bytes and padding are zero, as theirs.
        assert!(theirs[ID_BLOCK_SIG + 0x90..ID_BLOCK_SIG + SIG_LEN]
            .iter()
            .all(|&b| b == 0));
        // RFC 6979: signing again gives the same bytes.
        assert_eq!(
            sign(&block(), &id, Some(&author)).unwrap().to_bytes(),
            ours_bytes
        );
    }

    #[test]
    fn without_author_key_the_author_fields_are_zero() {
        let (id, _) = keys();
        let auth = sign(&block(), &id, None).unwrap();
        let b = auth.to_bytes();
        assert_eq!(&b[4..8], &[0; 4]);
        assert!(b[ID_KEY_SIG..].iter().all(|&x| x == 0));
        let back = IdAuth::parse(&b).unwrap();
        assert_eq!(back, auth);
        back.verify(&block()).unwrap();
    }

    #[test]
    fn tampering_is_detected() {
        let (id, author) = keys();
        let auth = sign(&block(), &id, Some(&author)).unwrap();
        let mut other = block();
        other.policy = SnpPolicy::new(0xb0000).unwrap(); // debug on
        let e = auth.verify(&other).unwrap_err().to_string();
        assert!(
            e.contains("ID_BLOCK_SIG") && e.contains("does not verify"),
            "{e}"
        );
        // Another author key over the same ID key.
        let mut swapped = auth.clone();
        swapped.author = Some((auth.id_key, auth.author.unwrap().1));
        assert!(swapped
            .verify(&block())
            .unwrap_err()
            .to_string()
            .contains("ID_KEY_SIG"));
        // Flipped bytes in the structure.
        let mut b = auth.to_bytes();
        b[ID_KEY + 4] ^= 1;
        assert!(IdAuth::parse(&b).is_err() || IdAuth::parse(&b).unwrap().verify(&block()).is_err());
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let e = P384Key::from_pem(P256_KEY.as_bytes(), "--id-key p256key.pem")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--id-key p256key.pem: a P-256 key; the SEV-SNP ID and author keys must be ECDSA P-384"),
            "{e}"
        );
        let p256 =
            crate::signing::SigningKey::from_seed(crate::signing::Algorithm::EcdsaP256, &[7; 32])
                .unwrap();
        let e = sign(&block(), &p256, None).unwrap_err().to_string();
        assert!(
            e.contains("ecdsa-p256-sha256") && e.contains("must be ECDSA P-384"),
            "{e}"
        );
        let e = IdPublicKey::from_spki_der(&crate::signer::Signer::public_key_der(&p256))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a P-256 key;"), "{e}");
        // Wrong sizes, versions, algorithms, curves, reserved policy bits.
        let good = block().to_bytes();
        assert!(IdBlock::parse(&good[..0x5f])
            .unwrap_err()
            .to_string()
            .contains("95 bytes, expected 96"));
        let mut b = good;
        b[80] = 2;
        assert!(IdBlock::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("VERSION: 2"));
        let mut b = good;
        b[88 + 2] = 0; // bit 17 cleared
        assert!(IdBlock::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("bit 17"));
        let mut b = good;
        b[88 + 7] = 0x80;
        assert!(IdBlock::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("reserved bits"));
        let (id, _) = keys();
        let auth = sign(&block(), &id, None).unwrap().to_bytes();
        assert!(IdAuth::parse(&auth[1..]).is_err());
        let mut a = auth.clone();
        a[0] = 2;
        assert!(IdAuth::parse(&a)
            .unwrap_err()
            .to_string()
            .contains("ID_KEY_ALGO: 2"));
        let mut a = auth.clone();
        a[4] = 7;
        assert!(IdAuth::parse(&a)
            .unwrap_err()
            .to_string()
            .contains("AUTHOR_KEY_ALGO: 7"));
        let mut a = auth.clone();
        a[ID_KEY] = 1;
        assert!(IdAuth::parse(&a)
            .unwrap_err()
            .to_string()
            .contains("curve 1"));
        let mut a = auth;
        a[ID_BLOCK_SIG + 0x47] = 1;
        assert!(IdAuth::parse(&a)
            .unwrap_err()
            .to_string()
            .contains("wider than 384 bits"));
    }
}
