//! TDX metadata (`TDVF`, edk2 `OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm`; QEMU
//! `hw/i386/tdvf.c`).
//!
//! The footer entry `e47a6535-…` holds the offset from the end of the file to the descriptor
//! `"TDVF" ‖ u32 length ‖ u32 version (1) ‖ u32 number_of_sections`, followed by 32-byte
//! sections `{ u32 data_offset; u32 raw_data_size; u64 memory_address; u64 memory_data_size;
//! u32 type; u32 attributes; }`. [`TdxMetadata::validate`] applies QEMU's consistency rules.

use super::bytes::{from_end, le_u32, le_u64, slice};
use super::error::{CvmError, Result};

const HEADER: usize = 16;
const SECTION: usize = 32;
const PAGE: u64 = 4096;

/// `TDX_METADATA_ATTRIBUTES_EXTENDMR`: extend the section's contents into MRTD.
pub const ATTR_MR_EXTEND: u32 = 1;
/// `TDX_METADATA_ATTRIBUTES_PAGE_AUG`: added later by `TDH.MEM.PAGE.AUG` (no PAGE.ADD record).
pub const ATTR_PAGE_AUG: u32 = 2;

/// TDVF section types.
pub mod kind {
    /// Boot firmware volume (OVMF code).
    pub const BFV: u32 = 0;
    /// Configuration firmware volume (VARS).
    pub const CFV: u32 = 1;
    /// Where QEMU writes the TD HOB list.
    pub const TD_HOB: u32 = 2;
    /// Temporary memory (stack, heap, mailbox, page tables).
    pub const TEMP_MEM: u32 = 3;
    /// Permanent memory.
    pub const PERM_MEM: u32 = 4;
    /// Kernel payload.
    pub const PAYLOAD: u32 = 5;
    /// Kernel payload parameters.
    pub const PAYLOAD_PARAM: u32 = 6;
}

/// One TDVF section, in metadata order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdxSection {
    /// Offset of the section's bytes in the firmware file.
    pub data_offset: u32,
    /// How many bytes the file holds for it.
    pub raw_data_size: u32,
    /// Guest-physical address.
    pub memory_address: u64,
    /// Size in guest memory.
    pub memory_data_size: u64,
    /// Type (see [`kind`]).
    pub kind: u32,
    /// Attribute bits ([`ATTR_MR_EXTEND`], [`ATTR_PAGE_AUG`]).
    pub attributes: u32,
}

/// The parsed TDVF descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxMetadata {
    /// File offset of the `TDVF` signature.
    pub offset: usize,
    /// The sections in metadata order (the order MRTD hashes them in).
    pub sections: Vec<TdxSection>,
}

/// Parses the descriptor `offset_from_end` bytes before the end of `data`.
pub(crate) fn parse(data: &[u8], offset_from_end: u32) -> Result<TdxMetadata> {
    let start = from_end(
        data.len(),
        offset_from_end,
        "TDX metadata descriptor",
        HEADER,
    )?;
    let sig = slice(data, start, 4, "TDX metadata descriptor")?;
    if sig != b"TDVF" {
        return Err(CvmError::Unexpected {
            what: "TDX metadata signature",
            offset: start as u64,
            expected: "\"TDVF\"".into(),
            found: format!("{:?}", String::from_utf8_lossy(sig)),
        });
    }
    let length = le_u32(data, start + 4, "TDX metadata length")?;
    let version = le_u32(data, start + 8, "TDX metadata version")?;
    if version != 1 {
        return Err(CvmError::Unexpected {
            what: "TDX metadata version",
            offset: start as u64 + 8,
            expected: "1".into(),
            found: version.to_string(),
        });
    }
    let count = le_u32(data, start + 12, "TDX metadata section count")?;
    let needed = HEADER as u64 + u64::from(count) * SECTION as u64;
    if needed > u64::from(length) {
        return Err(CvmError::Unexpected {
            what: "TDX metadata length",
            offset: start as u64 + 4,
            expected: format!("at least {needed} for {count} sections"),
            found: length.to_string(),
        });
    }
    let mut sections = Vec::new();
    for i in 0..count as usize {
        sections.push(section(data, start + HEADER + i * SECTION)?);
    }
    Ok(TdxMetadata {
        offset: start,
        sections,
    })
}

fn section(data: &[u8], at: usize) -> Result<TdxSection> {
    const WHAT: &str = "TDX metadata section";
    slice(data, at, SECTION, WHAT)?;
    Ok(TdxSection {
        data_offset: le_u32(data, at, WHAT)?,
        raw_data_size: le_u32(data, at + 4, WHAT)?,
        memory_address: le_u64(data, at + 8, WHAT)?,
        memory_data_size: le_u64(data, at + 16, WHAT)?,
        kind: le_u32(data, at + 24, WHAT)?,
        attributes: le_u32(data, at + 28, WHAT)?,
    })
}

impl TdxMetadata {
    /// Checks every section against QEMU's rules and the `file_size`-byte image: addresses and
    /// sizes page-aligned, memory size ≥ raw size, raw bytes inside the file, memory sections
    /// without raw data, firmware volumes with it, and at most 4 GiB per section.
    ///
    /// Together the sections may cover at most 4 GiB (what a 32-bit firmware GPA space holds):
    /// MRTD hashes a 128-byte record per page, so without that bound a 64 KiB file listing
    /// 2,000 sections of 4 GiB each would mean billions of records (hours); with it, at most
    /// 2^20 pages are added and only bytes present in the file are extended.
    pub fn validate(&self, file_size: usize) -> Result<()> {
        let mut total = 0u64;
        for (index, s) in self.sections.iter().enumerate() {
            let err = |why: String| CvmError::TdxSection {
                index,
                kind: s.kind,
                gpa: s.memory_address,
                why,
            };
            check_section(s, file_size).map_err(err)?;
            total = total.saturating_add(s.memory_data_size);
            if total > 1 << 32 {
                return Err(err(
                    "the sections up to this one cover more than 4 GiB of guest memory".into(),
                ));
            }
        }
        Ok(())
    }
}

fn check_section(s: &TdxSection, file_size: usize) -> std::result::Result<(), String> {
    if !s.memory_address.is_multiple_of(PAGE) || !s.memory_data_size.is_multiple_of(PAGE) {
        return Err(format!(
            "MemoryAddress {:#x} and MemoryDataSize {:#x} must be multiples of 4096",
            s.memory_address, s.memory_data_size
        ));
    }
    if s.memory_data_size > 1 << 32 || s.memory_address.checked_add(s.memory_data_size).is_none() {
        return Err(format!(
            "MemoryDataSize {:#x} is too large",
            s.memory_data_size
        ));
    }
    if s.memory_data_size < u64::from(s.raw_data_size) {
        return Err(format!(
            "MemoryDataSize {:#x} is smaller than RawDataSize {:#x}",
            s.memory_data_size, s.raw_data_size
        ));
    }
    let end = u64::from(s.data_offset) + u64::from(s.raw_data_size);
    if end > file_size as u64 {
        return Err(format!(
            "DataOffset {:#x} + RawDataSize {:#x} runs past the end of the {file_size}-byte firmware",
            s.data_offset, s.raw_data_size
        ));
    }
    match s.kind {
        kind::BFV | kind::CFV if s.raw_data_size == 0 => {
            Err("a firmware volume needs RawDataSize > 0".into())
        }
        kind::TD_HOB | kind::TEMP_MEM | kind::PERM_MEM if s.raw_data_size != 0 => Err(format!(
            "RawDataSize must be 0 for this type, found {:#x}",
            s.raw_data_size
        )),
        _ => Ok(()),
    }
}
