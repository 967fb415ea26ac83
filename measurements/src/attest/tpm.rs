//! TPM 2.0 quotes: the marshalled `TPMS_ATTEST` a `TPM2_Quote` signs and its `TPMT_SIGNATURE`,
//! exactly as `tpm2_quote -m MSG -s SIG` writes them (TPM 2.0 Library, Part 2: Structures,
//! §10.12.8 TPMS_ATTEST, §10.12.1 TPMS_QUOTE_INFO, §11.3.4 TPMT_SIGNATURE). Every length is
//! checked against the bytes present before anything is allocated.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::pcr::{Bank, Digest};

/// `TPM_GENERATED_VALUE`: the TPM made this structure.
pub const TPM_GENERATED: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
const ALG_SHA1: u16 = 0x0004;
const ALG_RSASSA: u16 = 0x0014;
const ALG_RSAPSS: u16 = 0x0016;
const ALG_ECDSA: u16 = 0x0018;
/// A TPM has at most 16 PCR banks here; real ones have 1–4.
const MAX_BANKS: u32 = 16;
/// `PCR_SELECT_MAX` is 3 on PC TPMs (24 PCRs); 32 bytes would be 256 PCRs.
const MAX_SELECT: u8 = 32;

/// Why quote evidence cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QuoteError {
    /// The bytes end inside a field.
    #[error("{what}: the structure ends at byte {len}, inside {field} (at offset {offset})")]
    Truncated {
        what: &'static str,
        field: &'static str,
        offset: usize,
        len: usize,
    },
    /// Bytes after the structure.
    #[error("{what}: {extra} bytes after the structure (offset {offset}): not a single {what}")]
    Trailing {
        what: &'static str,
        offset: usize,
        extra: usize,
    },
    /// A field holds a value this structure cannot have.
    #[error("{what}: {field} at offset {offset} is {value}: {why}")]
    Field {
        what: &'static str,
        field: &'static str,
        offset: usize,
        value: String,
        why: &'static str,
    },
    /// The AK public key is not one quotes can be checked with.
    #[error("the attestation key: {0}")]
    Key(String),
    /// The signature does not verify.
    #[error("the quote signature ({scheme}) does not verify with the attestation key: {why}")]
    Signature { scheme: String, why: String },
}

/// One bank's PCR selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// `TPM_ALG_ID` of the bank.
    pub alg: u16,
    /// The selected PCRs, ascending.
    pub pcrs: Vec<u32>,
}

impl Selection {
    /// The bank, if nodeimg predicts it.
    pub fn bank(&self) -> Option<Bank> {
        Bank::from_alg_id(self.alg)
    }

    /// `sha256:4,7,9` for messages.
    pub fn describe(&self) -> String {
        let pcrs: Vec<String> = self.pcrs.iter().map(u32::to_string).collect();
        format!("{}:{}", alg_name(self.alg), pcrs.join(","))
    }
}

/// A parsed `TPMS_ATTEST` of type quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// Name of the signing key (`qualifiedSigner`).
    pub signer_name: Vec<u8>,
    /// `extraData`: the verifier's nonce (qualifying data).
    pub extra_data: Vec<u8>,
    /// `clockInfo.clock` (ms since the TPM's clock was last cleared).
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    pub safe: bool,
    pub firmware_version: u64,
    /// The quoted PCRs, bank by bank, in the order the TPM hashed them.
    pub selections: Vec<Selection>,
    /// `pcrDigest`: the hash of the selected PCR values, concatenated in selection order.
    pub pcr_digest: Vec<u8>,
}

/// A parsed `TPMT_SIGNATURE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteSignature {
    /// RSASSA-PKCS1-v1_5 with `hash`.
    RsaSsa { hash: u16, sig: Vec<u8> },
    /// RSASSA-PSS with `hash`.
    RsaPss { hash: u16, sig: Vec<u8> },
    /// ECDSA with `hash`; `r` and `s` big-endian.
    Ecdsa { hash: u16, r: Vec<u8>, s: Vec<u8> },
}

impl QuoteSignature {
    /// The hash algorithm of the signing scheme (also the one `pcrDigest` is computed with).
    pub fn hash(&self) -> u16 {
        match self {
            QuoteSignature::RsaSsa { hash, .. }
            | QuoteSignature::RsaPss { hash, .. }
            | QuoteSignature::Ecdsa { hash, .. } => *hash,
        }
    }

    /// `ecdsa-sha256` etc.
    pub fn scheme(&self) -> String {
        let kind = match self {
            QuoteSignature::RsaSsa { .. } => "rsassa",
            QuoteSignature::RsaPss { .. } => "rsapss",
            QuoteSignature::Ecdsa { .. } => "ecdsa",
        };
        format!("{kind}-{}", alg_name(self.hash()))
    }
}

/// `sha256` for 0x000b, `alg 0x1234` for what nodeimg does not name.
pub fn alg_name(alg: u16) -> String {
    match alg {
        ALG_SHA1 => "sha1".into(),
        0x000d => "sha512".into(),
        a => Bank::from_alg_id(a).map_or_else(|| format!("alg {a:#06x}"), |b| b.name().into()),
    }
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    what: &'static str,
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, data: &'a [u8]) -> Self {
        Reader { what, data, at: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], QuoteError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(QuoteError::Truncated {
                what: self.what,
                field,
                offset: self.at,
                len: self.data.len(),
            })?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, QuoteError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, QuoteError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, QuoteError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, QuoteError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A `TPM2B_*`: a u16 size and that many bytes.
    fn tpm2b(&mut self, field: &'static str) -> Result<&'a [u8], QuoteError> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
    }

    fn field_error(
        &self,
        field: &'static str,
        offset: usize,
        value: String,
        why: &'static str,
    ) -> QuoteError {
        QuoteError::Field {
            what: self.what,
            field,
            offset,
            value,
            why,
        }
    }

    fn finish(&self) -> Result<(), QuoteError> {
        if self.at != self.data.len() {
            return Err(QuoteError::Trailing {
                what: self.what,
                offset: self.at,
                extra: self.data.len() - self.at,
            });
        }
        Ok(())
    }
}

impl Quote {
    /// Parses a marshalled `TPMS_ATTEST` (what `tpm2_quote -m` writes) that must be a quote.
    pub fn parse(data: &[u8]) -> Result<Quote, QuoteError> {
        let mut r = Reader::new("TPMS_ATTEST", data);
        let magic = r.u32("magic")?;
        if magic != TPM_GENERATED {
            return Err(r.field_error(
                "magic",
                0,
                format!("{magic:#010x}"),
                "not TPM_GENERATED_VALUE (0xff544347): not made by a TPM",
            ));
        }
        let ty = r.u16("type")?;
        if ty != ST_ATTEST_QUOTE {
            return Err(r.field_error(
                "type",
                4,
                format!("{ty:#06x}"),
                "not TPM_ST_ATTEST_QUOTE (0x8018): another kind of attestation",
            ));
        }
        let signer_name = r.tpm2b("qualifiedSigner")?.to_vec();
        let extra_data = r.tpm2b("extraData")?.to_vec();
        let clock = r.u64("clockInfo.clock")?;
        let reset_count = r.u32("clockInfo.resetCount")?;
        let restart_count = r.u32("clockInfo.restartCount")?;
        let safe_at = r.at;
        let safe = match r.u8("clockInfo.safe")? {
            0 => false,
            1 => true,
            v => {
                return Err(r.field_error(
                    "clockInfo.safe",
                    safe_at,
                    v.to_string(),
                    "not a TPMI_YES_NO",
                ))
            }
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let count_at = r.at;
        let count = r.u32("pcrSelect.count")?;
        if count > MAX_BANKS {
            return Err(r.field_error(
                "pcrSelect.count",
                count_at,
                count.to_string(),
                "more PCR banks than any TPM has (at most 16)",
            ));
        }
        let mut selections = Vec::new();
        for _ in 0..count {
            let alg = r.u16("pcrSelections.hash")?;
            let size_at = r.at;
            let size = r.u8("pcrSelections.sizeofSelect")?;
            if size > MAX_SELECT {
                return Err(r.field_error(
                    "pcrSelections.sizeofSelect",
                    size_at,
                    size.to_string(),
                    "a selection of more than 256 PCRs",
                ));
            }
            let bits = r.take(usize::from(size), "pcrSelections.pcrSelect")?;
            let pcrs = bits
                .iter()
                .enumerate()
                .flat_map(|(byte, b)| {
                    (0..8u32)
                        .filter(move |bit| b & (1 << bit) != 0)
                        .map(move |bit| byte as u32 * 8 + bit)
                })
                .collect();
            selections.push(Selection { alg, pcrs });
        }
        let pcr_digest = r.tpm2b("pcrDigest")?.to_vec();
        r.finish()?;
        Ok(Quote {
            signer_name,
            extra_data,
            clock,
            reset_count,
            restart_count,
            safe,
            firmware_version,
            selections,
            pcr_digest,
        })
    }

    /// The digest a TPM computes over `values` for this quote's selection with `hash`: the
    /// selected PCRs' values concatenated bank by bank, PCRs ascending. `Err` names the first
    /// selected PCR `values` lacks.
    pub fn expected_digest(
        &self,
        hash: Bank,
        values: &BTreeMap<(Bank, u32), Digest>,
    ) -> Result<Vec<u8>, (String, u32)> {
        let mut h = hash.hasher();
        for s in &self.selections {
            let Some(bank) = s.bank() else {
                return Err((alg_name(s.alg), s.pcrs.first().copied().unwrap_or(0)));
            };
            for pcr in &s.pcrs {
                let v = values
                    .get(&(bank, *pcr))
                    .ok_or_else(|| (bank.name().to_string(), *pcr))?;
                h.update(v.as_bytes());
            }
        }
        Ok(h.finish().as_bytes().to_vec())
    }
}

impl QuoteSignature {
    /// Parses a marshalled `TPMT_SIGNATURE` (what `tpm2_quote -s` writes, "tss" format).
    pub fn parse(data: &[u8]) -> Result<QuoteSignature, QuoteError> {
        let mut r = Reader::new("TPMT_SIGNATURE", data);
        let alg = r.u16("sigAlg")?;
        let hash = r.u16("hash")?;
        let sig = match alg {
            ALG_RSASSA => QuoteSignature::RsaSsa {
                hash,
                sig: r.tpm2b("signature")?.to_vec(),
            },
            ALG_RSAPSS => QuoteSignature::RsaPss {
                hash,
                sig: r.tpm2b("signature")?.to_vec(),
            },
            ALG_ECDSA => QuoteSignature::Ecdsa {
                hash,
                r: r.tpm2b("signatureR")?.to_vec(),
                s: r.tpm2b("signatureS")?.to_vec(),
            },
            other => {
                return Err(r.field_error(
                    "sigAlg",
                    0,
                    format!("{other:#06x}"),
                    "not RSASSA (0x0014), RSAPSS (0x0016) or ECDSA (0x0018)",
                ))
            }
        };
        if Bank::from_alg_id(hash).is_none() {
            return Err(r.field_error(
                "hash",
                2,
                alg_name(hash),
                "quotes are checked with SHA-256 or SHA-384 signing schemes",
            ));
        }
        r.finish()?;
        Ok(sig)
    }

    /// Verifies this signature over `message` (the `TPMS_ATTEST` bytes) with the attestation
    /// key `ak_spki_der` (SubjectPublicKeyInfo DER: RSA, or ECDSA P-256 / P-384).
    pub fn verify(&self, message: &[u8], ak_spki_der: &[u8]) -> Result<(), QuoteError> {
        let hash = Bank::from_alg_id(self.hash()).ok_or_else(|| QuoteError::Key("hash".into()))?;
        let digest = hash.hash(message);
        let fail = |why: String| QuoteError::Signature {
            scheme: self.scheme(),
            why,
        };
        let key = AkKey::from_spki_der(ak_spki_der)?;
        match (self, &key) {
            (QuoteSignature::RsaSsa { sig, .. }, AkKey::Rsa(k)) => {
                let scheme = match hash {
                    Bank::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    Bank::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                };
                k.verify(scheme, digest.as_bytes(), sig)
                    .map_err(|e| fail(e.to_string()))
            }
            (QuoteSignature::RsaPss { sig, .. }, AkKey::Rsa(k)) => {
                let scheme = match hash {
                    Bank::Sha256 => rsa::Pss::new::<sha2::Sha256>(),
                    Bank::Sha384 => rsa::Pss::new::<sha2::Sha384>(),
                };
                k.verify(scheme, digest.as_bytes(), sig)
                    .map_err(|e| fail(e.to_string()))
            }
            (QuoteSignature::Ecdsa { r, s, .. }, AkKey::P256(k)) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                let sig = p256::ecdsa::Signature::from_scalars(
                    scalar::<32>(r).ok_or_else(|| fail("r is longer than 32 bytes".into()))?,
                    scalar::<32>(s).ok_or_else(|| fail("s is longer than 32 bytes".into()))?,
                )
                .map_err(|e| fail(e.to_string()))?;
                let sig = sig.normalize_s().unwrap_or(sig);
                k.verify_prehash(digest.as_bytes(), &sig)
                    .map_err(|e| fail(e.to_string()))
            }
            (QuoteSignature::Ecdsa { r, s, .. }, AkKey::P384(k)) => {
                use p384::ecdsa::signature::hazmat::PrehashVerifier;
                let sig = p384::ecdsa::Signature::from_scalars(
                    scalar::<48>(r).ok_or_else(|| fail("r is longer than 48 bytes".into()))?,
                    scalar::<48>(s).ok_or_else(|| fail("s is longer than 48 bytes".into()))?,
                )
                .map_err(|e| fail(e.to_string()))?;
                let sig = sig.normalize_s().unwrap_or(sig);
                k.verify_prehash(digest.as_bytes(), &sig)
                    .map_err(|e| fail(e.to_string()))
            }
            (_, key) => Err(fail(format!(
                "a {} signature cannot come from {} key",
                self.scheme(),
                key.describe()
            ))),
        }
    }
}

/// A big-endian integer left-padded to `N` bytes (TPMs drop leading zeros).
fn scalar<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    let v = &v[v.iter().take_while(|b| **b == 0).count()..];
    if v.len() > N {
        return None;
    }
    let mut out = [0u8; N];
    out[N - v.len()..].copy_from_slice(v);
    Some(out)
}

/// An attestation key's public half.
#[derive(Debug, Clone)]
pub enum AkKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl AkKey {
    /// From SubjectPublicKeyInfo DER (`tpm2_readpublic -f pem`, decoded).
    pub fn from_spki_der(der: &[u8]) -> Result<AkKey, QuoteError> {
        use spki::DecodePublicKey;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Ok(AkKey::Rsa(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(AkKey::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(AkKey::P384(k));
        }
        Err(QuoteError::Key(
            "not an RSA, ECDSA P-256 or ECDSA P-384 SubjectPublicKeyInfo (give the PEM \
             `tpm2_readpublic -f pem` writes)"
                .into(),
        ))
    }

    /// The SubjectPublicKeyInfo DER inside SPKI PEM text, checked to be a key quotes can be
    /// verified with.
    pub fn spki_der_from_pem(pem: &[u8]) -> Result<Vec<u8>, QuoteError> {
        let text = std::str::from_utf8(pem).map_err(|_| QuoteError::Key("not PEM text".into()))?;
        let (label, der) = der::pem::decode_vec(text.trim().as_bytes())
            .map_err(|e| QuoteError::Key(format!("not PEM: {e}")))?;
        if label != "PUBLIC KEY" {
            return Err(QuoteError::Key(format!(
                "a PEM `{label}`, not a `PUBLIC KEY` (SubjectPublicKeyInfo)"
            )));
        }
        AkKey::from_spki_der(&der)?;
        Ok(der)
    }

    /// `an RSA-2048` / `a P-256` for messages.
    pub fn describe(&self) -> String {
        use rsa::traits::PublicKeyParts;
        match self {
            AkKey::Rsa(k) => format!("an RSA-{}", k.n().bits()),
            AkKey::P256(_) => "a P-256".into(),
            AkKey::P384(_) => "a P-384".into(),
        }
    }
}

#[cfg(test)]
mod tests;
