//! The PE Authenticode digest, exactly as UEFI firmware computes it for PCR 4 (edk2
//! `MeasurePeImageAndExtend`; `uki-pcr-verity.md` §6.2): the file minus `CheckSum` and the
//! certificate-table directory entry, up to `SizeOfHeaders`; then every section with file data,
//! ordered by `PointerToRawData`, `SizeOfRawData` bytes each; then any data after
//! `SizeOfHeaders + ΣSizeOfRawData` that is not the certificate table. No padding is added, so
//! an unsigned file whose length is not a multiple of 8 hashes differently from its signed copy
//! (signers pad first), exactly like the firmware.

use std::ops::Range;

use thiserror::Error;

use crate::pcr::{Bank, Digest};
use crate::pe::{Pe, PeError, DIRECTORY_ENTRY_SECURITY};

/// Why an image has no Authenticode digest.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthenticodeError {
    /// The headers could not be parsed.
    #[error(transparent)]
    Pe(#[from] PeError),
    /// A region the digest covers lies outside the file or before a field it must follow.
    #[error("{what}: bytes {start:#x}..{end:#x} are not inside the {len:#x}-byte file")]
    OutOfBounds {
        /// The region.
        what: String,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// The file length.
        len: u64,
    },
    /// The file is shorter than its headers, sections and certificate table claim.
    #[error(
        "the file ({len:#x} bytes) is shorter than SizeOfHeaders + section data ({hashed:#x}) \
         + certificate table ({cert:#x})"
    )]
    CertificateTable {
        /// File length.
        len: u64,
        /// Bytes covered by headers and sections.
        hashed: u64,
        /// `DataDirectory[4].Size`.
        cert: u64,
    },
}

/// The byte ranges of the file that the digest covers, in hashing order.
pub fn hashed_ranges(pe: &Pe<'_>) -> Result<Vec<Range<usize>>, AuthenticodeError> {
    let len = pe.data().len();
    let headers = pe.optional.size_of_headers as usize;
    let check = |what: &str, r: Range<usize>| {
        if r.start <= r.end && r.end <= len {
            Ok(r)
        } else {
            Err(AuthenticodeError::OutOfBounds {
                what: what.to_string(),
                start: r.start as u64,
                end: r.end as u64,
                len: len as u64,
            })
        }
    };
    let checksum = pe.offsets.check_sum;
    let mut ranges = vec![check("headers before CheckSum", 0..checksum)?];
    let has_cert_entry = pe.optional.data_directories.len() > DIRECTORY_ENTRY_SECURITY;
    if has_cert_entry {
        let entry = pe.offsets.data_directory(DIRECTORY_ENTRY_SECURITY);
        ranges.push(check(
            "headers between CheckSum and the certificate entry",
            checksum + 4..entry,
        )?);
        ranges.push(check(
            "headers after the certificate entry",
            entry + 8..headers,
        )?);
    } else {
        ranges.push(check("headers after CheckSum", checksum + 4..headers)?);
    }
    let mut sections: Vec<_> = pe
        .sections
        .iter()
        .filter(|s| s.size_of_raw_data != 0)
        .collect();
    sections.sort_by_key(|s| s.pointer_to_raw_data); // stable, like edk2's insertion sort
    let mut hashed = headers as u64;
    for s in sections {
        let start = s.pointer_to_raw_data as usize;
        let end = start.saturating_add(s.size_of_raw_data as usize);
        ranges.push(check(
            &format!("section {} data", s.name_lossy()),
            start..end,
        )?);
        hashed += u64::from(s.size_of_raw_data);
    }
    if let Some(r) = trailing(pe, hashed)? {
        ranges.push(r);
    }
    Ok(ranges)
}

/// Data after the hashed headers and sections, minus the certificate table at the end.
fn trailing(pe: &Pe<'_>, hashed: u64) -> Result<Option<Range<usize>>, AuthenticodeError> {
    let len = pe.data().len() as u64;
    if len <= hashed {
        return Ok(None);
    }
    let cert = pe
        .optional
        .data_directories
        .get(DIRECTORY_ENTRY_SECURITY)
        .map_or(0, |d| u64::from(d.size));
    match len.checked_sub(cert) {
        Some(end) if end > hashed => Ok(Some(hashed as usize..end as usize)),
        Some(end) if end == hashed => Ok(None),
        _ => Err(AuthenticodeError::CertificateTable { len, hashed, cert }),
    }
}

/// The Authenticode digest of `pe` in `bank`.
pub fn digest(pe: &Pe<'_>, bank: Bank) -> Result<Digest, AuthenticodeError> {
    let data = pe.data();
    let mut h = bank.hasher();
    for r in hashed_ranges(pe)? {
        h.update(&data[r]);
    }
    Ok(h.finish())
}

/// Parses `image` and returns its Authenticode digest in `bank`.
pub fn digest_of(image: &[u8], bank: Bank) -> Result<Digest, AuthenticodeError> {
    digest(&Pe::parse(image)?, bank)
}

#[cfg(test)]
mod tests;
