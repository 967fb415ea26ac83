//! SEV metadata (`ASEV`, edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`): the memory
//! regions the VMM must pre-validate and how SNP measures them.
//!
//! Layout at `size − offset`: `"ASEV" ‖ u32 length ‖ u32 version (1) ‖ u32 num_items`, then
//! `num_items` × `{ u32 gpa; u32 size; u32 type; }`. Items are kept raw: an unknown type is an
//! error only when a measurement needs it (sev-snp-measure behaves the same way).

use super::bytes::{from_end, le_u32, slice};
use super::error::{CvmError, Result};

const HEADER: usize = 16;
const ITEM: usize = 12;

/// What an SEV metadata section is (its `type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SevSectionKind {
    /// 1: pre-validated memory (measured as zero pages; unmeasured on GCE).
    SecMem,
    /// 2: the SNP secrets page.
    Secrets,
    /// 3: the CPUID page.
    Cpuid,
    /// 4: the SVSM calling-area page (zero pages).
    SvsmCaa,
    /// 0x10: the page holding the kernel hashes table (measured direct boot).
    KernelHashes,
}

impl SevSectionKind {
    /// The kind for a raw `type` value.
    pub fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::SecMem,
            2 => Self::Secrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::KernelHashes,
            _ => return None,
        })
    }
}

/// One SEV metadata item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevSection {
    /// Guest-physical address.
    pub gpa: u32,
    /// Size in bytes.
    pub size: u32,
    /// Raw `type` value (see [`SevSectionKind::from_raw`]).
    pub kind: u32,
}

impl SevSection {
    /// The section's kind, if known.
    pub fn kind(&self) -> Option<SevSectionKind> {
        SevSectionKind::from_raw(self.kind)
    }
}

/// Parses the `ASEV` header `offset_from_end` bytes before the end of `data`.
pub(crate) fn parse(data: &[u8], offset_from_end: u32) -> Result<Vec<SevSection>> {
    let start = from_end(data.len(), offset_from_end, "SEV metadata header", HEADER)?;
    let sig = slice(data, start, 4, "SEV metadata header")?;
    if sig != b"ASEV" {
        return Err(CvmError::Unexpected {
            what: "SEV metadata signature",
            offset: start as u64,
            expected: "\"ASEV\"".into(),
            found: format!("{:?}", String::from_utf8_lossy(sig)),
        });
    }
    let length = le_u32(data, start + 4, "SEV metadata length")?;
    let version = le_u32(data, start + 8, "SEV metadata version")?;
    if version != 1 {
        return Err(CvmError::Unexpected {
            what: "SEV metadata version",
            offset: start as u64 + 8,
            expected: "1".into(),
            found: version.to_string(),
        });
    }
    let count = le_u32(data, start + 12, "SEV metadata item count")?;
    let needed = HEADER as u64 + u64::from(count) * ITEM as u64;
    if needed > u64::from(length) {
        return Err(CvmError::Unexpected {
            what: "SEV metadata length",
            offset: start as u64 + 4,
            expected: format!("at least {needed} for {count} items"),
            found: length.to_string(),
        });
    }
    // `needed <= length <= u32::MAX`, so this cannot truncate.
    let items = slice(
        data,
        start + HEADER,
        needed as usize - HEADER,
        "SEV metadata items",
    )?;
    Ok(items
        .chunks_exact(ITEM)
        .map(|it| {
            let word = |i: usize| u32::from_le_bytes([it[i], it[i + 1], it[i + 2], it[i + 3]]);
            SevSection {
                gpa: word(0),
                size: word(4),
                kind: word(8),
            }
        })
        .collect())
}
