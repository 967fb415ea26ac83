//! Authenticode signing of PE images (the UKI) as UEFI firmware verifies them: the image padded
//! to 8 bytes, its SHA-256 Authenticode digest in an `SpcIndirectDataContent`, a PKCS#7
//! `SignedData` over it appended as the attribute certificate table (`WIN_CERTIFICATE`,
//! revision 2.0, type `WIN_CERT_TYPE_PKCS_SIGNED_DATA`), the security data directory pointing at
//! it and the optional-header `CheckSum` recomputed. Deterministic for a given key and image.
//!
//! Re-signing a signed image **replaces** its signature: the old certificate table is dropped
//! first (so the result equals signing the unsigned image).

use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, BmpString, OctetString};
use der::{Choice, Encode, Sequence, Tag};
use x509_cert::Certificate;

use super::pkcs7::{self, alg_null, attribute, der_err, Content, ID_SHA256};
use super::SecureBootError;
use crate::pcr::Bank;
use crate::pe::{Pe, DIRECTORY_ENTRY_SECURITY};
use crate::signer::Signer;

/// `SPC_INDIRECT_DATA_OBJID`.
pub const SPC_INDIRECT_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// `SPC_PE_IMAGE_DATAOBJ`.
pub const SPC_PE_IMAGE_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// `SPC_SP_OPUS_INFO_OBJID`.
pub const SPC_SP_OPUS_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");
/// `WIN_CERT_REVISION_2_0`.
pub const WIN_CERT_REVISION_2_0: u16 = 0x0200;
/// `WIN_CERT_TYPE_PKCS_SIGNED_DATA`.
pub const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;

#[derive(Clone, Debug, Eq, PartialEq, Choice)]
enum SpcString {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Unicode(BmpString),
}

#[derive(Clone, Debug, Eq, PartialEq, Choice)]
enum SpcLink {
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    File(SpcString),
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SpcPeImageData {
    flags: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    file: Option<SpcLink>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SpcAttributeTypeAndOptionalValue {
    value_type: ObjectIdentifier,
    value: SpcPeImageData,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct DigestInfo {
    digest_algorithm: spki::AlgorithmIdentifierOwned,
    digest: OctetString,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SpcIndirectDataContent {
    data: SpcAttributeTypeAndOptionalValue,
    message_digest: DigestInfo,
}

/// One `WIN_CERTIFICATE` of an image's attribute certificate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinCertificate {
    /// `wRevision`.
    pub revision: u16,
    /// `wCertificateType`.
    pub cert_type: u16,
    /// `bCertificate` (`dwLength - 8` bytes).
    pub data: Vec<u8>,
}

/// An attribute certificate table: its file range and entries.
pub type CertificateTable = (std::ops::Range<usize>, Vec<WinCertificate>);

/// The attribute certificate table of `image`: its file range and entries. `None` when the
/// image is unsigned. Errors name what is wrong (the table must be the last thing in the file
/// and every entry inside it).
pub fn certificate_table(image: &[u8]) -> Result<Option<CertificateTable>, SecureBootError> {
    let pe = Pe::parse(image).map_err(|e| SecureBootError::Image(e.to_string()))?;
    let Some(dir) = pe
        .optional
        .data_directories
        .get(DIRECTORY_ENTRY_SECURITY)
        .filter(|d| d.size != 0 || d.virtual_address != 0)
    else {
        return Ok(None);
    };
    let start = dir.virtual_address as usize;
    let end = start
        .checked_add(dir.size as usize)
        .filter(|&e| e <= image.len());
    let Some(end) = end else {
        return Err(SecureBootError::Image(format!(
            "the certificate table ({:#x} bytes at {start:#x}) runs past the end of the \
             {:#x}-byte file: the signature is truncated",
            dir.size,
            image.len()
        )));
    };
    if end != image.len() {
        return Err(SecureBootError::Image(format!(
            "the certificate table ends at {end:#x}, not at the end of the file ({:#x}): \
             data after a signature is not supported",
            image.len()
        )));
    }
    let mut entries = Vec::new();
    let mut at = start;
    while at < end {
        let header = image
            .get(at..at + 8)
            .filter(|_| at + 8 <= end)
            .ok_or_else(|| {
                SecureBootError::Image(format!(
                    "certificate table entry at {at:#x}: fewer than 8 header bytes before the \
                 table's end {end:#x} (truncated)"
                ))
            })?;
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let entry_end = at.checked_add(len).filter(|&e| len >= 8 && e <= end);
        let Some(entry_end) = entry_end else {
            return Err(SecureBootError::Image(format!(
                "certificate table entry at {at:#x}: dwLength {len:#x} does not fit the table \
                 ({at:#x}..{end:#x}) (truncated or corrupt)"
            )));
        };
        entries.push(WinCertificate {
            revision: u16::from_le_bytes([header[4], header[5]]),
            cert_type: u16::from_le_bytes([header[6], header[7]]),
            data: image[at + 8..entry_end].to_vec(),
        });
        at = (entry_end + 7) & !7;
    }
    Ok(Some((start..end, entries)))
}

/// The image without its signature: certificate table removed, directory entry and checksum
/// zeroed. Unsigned images are returned unchanged.
pub fn strip(image: &[u8]) -> Result<Vec<u8>, SecureBootError> {
    let Some((range, _)) = certificate_table(image)? else {
        return Ok(image.to_vec());
    };
    let mut out = image[..range.start].to_vec();
    let pe = Pe::parse(image).map_err(|e| SecureBootError::Image(e.to_string()))?;
    let entry = pe.offsets.data_directory(DIRECTORY_ENTRY_SECURITY);
    out[entry..entry + 8].fill(0);
    let sum = pe.offsets.check_sum;
    out[sum..sum + 4].fill(0);
    Ok(out)
}

/// The PE `CheckSum` of `image` (the field itself counted as zero).
pub fn pe_checksum(image: &[u8], check_sum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in image.chunks(2).enumerate() {
        let at = i * 2;
        if at == check_sum_offset || at == check_sum_offset + 2 {
            continue;
        }
        let word = u16::from_le_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u64::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(image.len() as u32)
}

/// The DER `SpcIndirectDataContent` for an image's SHA-256 Authenticode digest (the form
/// sbsign and signtool write: empty flags, the obsolete file link).
fn indirect_data(digest: &[u8]) -> Result<Vec<u8>, SecureBootError> {
    let obsolete = BmpString::from_utf8("<<<Obsolete>>>").map_err(der_err)?;
    SpcIndirectDataContent {
        data: SpcAttributeTypeAndOptionalValue {
            value_type: SPC_PE_IMAGE_DATA,
            value: SpcPeImageData {
                flags: BitString::new(0, Vec::<u8>::new()).map_err(der_err)?,
                file: Some(SpcLink::File(SpcString::Unicode(obsolete))),
            },
        },
        message_digest: DigestInfo {
            digest_algorithm: alg_null(ID_SHA256),
            digest: OctetString::new(digest).map_err(der_err)?,
        },
    }
    .to_der()
    .map_err(der_err)
}

/// Signs `image` with `signer` (certificate `cert`): any existing signature is replaced.
pub fn sign(
    image: &[u8],
    cert: &Certificate,
    signer: &dyn Signer,
) -> Result<Vec<u8>, SecureBootError> {
    let mut out = strip(image)?;
    let pe = Pe::parse(&out).map_err(|e| SecureBootError::Image(e.to_string()))?;
    if pe.optional.data_directories.len() <= DIRECTORY_ENTRY_SECURITY {
        return Err(SecureBootError::Image(format!(
            "the image has {} data directories, so no certificate-table entry: it cannot carry \
             an Authenticode signature",
            pe.optional.data_directories.len()
        )));
    }
    let entry = pe.offsets.data_directory(DIRECTORY_ENTRY_SECURITY);
    let check_sum = pe.offsets.check_sum;
    drop(pe);
    // Signers pad the image to 8 bytes first; the padding is hashed like any trailing data.
    out.resize(out.len().next_multiple_of(8), 0);
    let digest = crate::authenticode::digest_of(&out, Bank::Sha256)
        .map_err(|e| SecureBootError::Image(e.to_string()))?;
    let content = indirect_data(digest.as_bytes())?;
    let opus = attribute(
        SPC_SP_OPUS_INFO,
        Any::new(Tag::Sequence, Vec::<u8>::new()).map_err(der_err)?,
    )?;
    let pkcs7 = pkcs7::sign(
        Content::Attributed {
            content_type: SPC_INDIRECT_DATA,
            econtent: &content,
            extra: vec![opus],
        },
        cert,
        signer,
        true,
    )?;
    let table_at = out.len();
    let length = 8 + pkcs7.len();
    let padded = length.next_multiple_of(8);
    let too_big = || SecureBootError::Image("the signed image would exceed 4 GiB".to_string());
    out.extend_from_slice(&u32::try_from(length).map_err(|_| too_big())?.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_REVISION_2_0.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    out.extend_from_slice(&pkcs7);
    out.resize(table_at + padded, 0);
    let table_at32 = u32::try_from(table_at).map_err(|_| too_big())?;
    out[entry..entry + 4].copy_from_slice(&table_at32.to_le_bytes());
    out[entry + 4..entry + 8].copy_from_slice(&(padded as u32).to_le_bytes());
    let sum = pe_checksum(&out, check_sum);
    out[check_sum..check_sum + 4].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// The certificates of every PKCS#7 signature in `image` (empty for an unsigned image), in
/// table order.
pub fn signer_certificates(image: &[u8]) -> Result<Vec<Vec<Certificate>>, SecureBootError> {
    let Some((_, entries)) = certificate_table(image)? else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .filter(|e| e.cert_type == WIN_CERT_TYPE_PKCS_SIGNED_DATA)
        .map(|e| pkcs7::certificates(&e.data))
        .collect()
}

#[cfg(test)]
mod tests;
