//! The host side of a TPM quote from a booted image (`nodeimg boot --tpm --quote NONCE`): a
//! read-only request disk carrying the nonce, and the `NODEIMG-QUOTE` line nodeimg-init prints
//! in answer (`docs/boot-protocol.md`, `init/src/quote.rs`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;

/// The first bytes of the request disk (nodeimg-init's `quote::REQUEST_MAGIC`).
pub const REQUEST_MAGIC: &[u8; 16] = b"NODEIMG-QUOTE-RQ";
/// The answer: `NODEIMG-QUOTE <TPMS_ATTEST> <TPMT_SIGNATURE> <AK SPKI DER>`, base64 each.
pub const LINE: &str = "NODEIMG-QUOTE ";
/// Or `NODEIMG-QUOTE-ERROR <why>`.
pub const ERROR_LINE: &str = "NODEIMG-QUOTE-ERROR ";
/// Qualifying data holds at most 64 bytes.
pub const NONCE_MAX: usize = 64;

/// Writes the request disk (4 KiB: magic, u16 big-endian length, nonce) into `dir`.
pub fn request_disk(dir: &Path, nonce: &[u8]) -> Result<PathBuf> {
    if nonce.is_empty() || nonce.len() > NONCE_MAX {
        bail!(
            "--quote: the nonce is {} bytes; a TPM quote takes 1 to {NONCE_MAX}",
            nonce.len()
        );
    }
    let mut disk = vec![0u8; 4096];
    disk[..16].copy_from_slice(REQUEST_MAGIC);
    disk[16..18].copy_from_slice(&(nonce.len() as u16).to_be_bytes());
    disk[18..18 + nonce.len()].copy_from_slice(nonce);
    let path = dir.join("quote-request.img");
    std::fs::write(&path, disk).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Whether `line` is the guest's answer (either kind).
pub fn is_final_line(line: &str) -> bool {
    line.contains(LINE) || line.contains(ERROR_LINE)
}

/// A quote the guest made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestQuote {
    /// The marshalled TPMS_ATTEST (`tpm2_quote -m`).
    pub attest: Vec<u8>,
    /// The marshalled TPMT_SIGNATURE (`tpm2_quote -s`).
    pub signature: Vec<u8>,
    /// The AK, SubjectPublicKeyInfo DER.
    pub ak_spki_der: Vec<u8>,
}

impl GuestQuote {
    /// The answer on the console: `None` when there is none, `Err` for an error line or one
    /// that does not decode.
    pub fn from_console(log: &str) -> Option<Result<GuestQuote, String>> {
        for line in log.lines() {
            if let Some(at) = line.find(ERROR_LINE) {
                return Some(Err(format!(
                    "the guest could not quote: {}",
                    line[at + ERROR_LINE.len()..].trim()
                )));
            }
            if let Some(at) = line.find(LINE) {
                let fields: Vec<&str> = line[at + LINE.len()..].split_whitespace().collect();
                let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s);
                return Some(match fields.as_slice() {
                    [a, s, k] => match (decode(a), decode(s), decode(k)) {
                        (Ok(attest), Ok(signature), Ok(ak_spki_der)) => Ok(GuestQuote {
                            attest,
                            signature,
                            ak_spki_der,
                        }),
                        _ => Err("the NODEIMG-QUOTE line is not base64".into()),
                    },
                    _ => Err(format!(
                        "the NODEIMG-QUOTE line has {} fields, not 3",
                        fields.len()
                    )),
                });
            }
        }
        None
    }

    /// The AK as SPKI PEM (what `tpm2_readpublic -f pem` writes).
    pub fn ak_pem(&self) -> Result<String> {
        use x509_cert::der::pem::LineEnding;
        x509_cert::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.ak_spki_der)
            .map_err(|e| anyhow::anyhow!("encoding the AK as PEM: {e}"))
    }

    /// Writes `quote.msg`, `quote.sig`, `ak.pem`, `nonce` (hex) and, when given, `eventlog.bin`
    /// into `dir` (created if missing; each file replaced whole); the paths written.
    pub fn write_evidence(
        &self,
        dir: &Path,
        nonce: &[u8],
        event_log: Option<&[u8]>,
    ) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            ("quote.msg", self.attest.clone()),
            ("quote.sig", self.signature.clone()),
            ("ak.pem", self.ak_pem()?.into_bytes()),
            ("nonce", format!("{}\n", hex::encode(nonce)).into_bytes()),
        ];
        if let Some(log) = event_log {
            files.push(("eventlog.bin", log.to_vec()));
        }
        let mut written = Vec::new();
        for (name, bytes) in files {
            let p = dir.join(name);
            crate::outfile::write(&p, &bytes, 0o644)?;
            written.push(p);
        }
        Ok(written)
    }
}
