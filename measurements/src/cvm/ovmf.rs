//! The OVMF GUIDed footer table (edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`).
//!
//! QEMU maps a `-bios` image so that it ends at 4 GiB. The last 0x20 bytes hold the reset vector;
//! directly before them sits the footer entry (`u16 table_length ‖ GUID 96b582de-…`), and below
//! it the table grows downward, each entry being `data ‖ u16 entry_length ‖ GUID`. A missing
//! footer GUID means an empty table (sev-snp-measure's behaviour); any other inconsistency is an
//! error naming the offset.

use super::bytes::{le_u16, le_u32, slice};
use super::error::{CvmError, Result};
use super::sevmeta::{self, SevSection};
use super::tdvf::{self, TdxMetadata};

pub use crate::guid::Guid;

/// `96b582de-1fb2-45f7-baea-a366c55a082d`: the footer entry that closes the table.
pub const FOOTER_GUID: Guid = Guid::new(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// `00f771de-…`: SEV-ES reset block (`u32`: AP IP in the low 16 bits, CS base >> 16 above).
pub const SEV_ES_RESET_BLOCK_GUID: Guid = Guid::new(
    0x00f7_71de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// `7255371f-…`: SEV hash table block (`u32 base_gpa, u32 size`).
pub const SEV_HASH_TABLE_GUID: Guid = Guid::new(
    0x7255_371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);
/// `dc886566-…`: offset from the end of the file to the `ASEV` header.
pub const SEV_METADATA_GUID: Guid = Guid::new(
    0xdc88_6566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
/// `a789a612-…`: SVSM information (inside an SVSM image: `u32` entry point offset).
pub const SVSM_INFO_GUID: Guid = Guid::new(
    0xa789_a612,
    0x0597,
    0x4c4b,
    [0xa4, 0x9f, 0xcb, 0xb1, 0xfe, 0x9d, 0x1d, 0xdd],
);
/// `e47a6535-…`: offset from the end of the file to the `TDVF` descriptor.
pub const TDX_METADATA_GUID: Guid = Guid::new(
    0xe47a_6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);

/// Bytes after the footer entry (AP jump, VTF signature, reset vector).
const RESET_AREA: usize = 0x20;
/// `u16 length ‖ GUID`.
const ENTRY_HEADER: usize = 18;
/// Where the firmware ends in guest-physical memory.
pub const FOUR_GIB: u64 = 1 << 32;

/// One footer-table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterEntry<'a> {
    /// Its GUID.
    pub guid: Guid,
    /// File offset of its data.
    pub offset: usize,
    /// Its data (without the length and GUID).
    pub data: &'a [u8],
}

/// A firmware image with its footer table parsed. Borrowed: bytes in, no file access.
#[derive(Debug, Clone)]
pub struct Ovmf<'a> {
    data: &'a [u8],
    /// Guest-physical address just past the image (4 GiB for a `-bios` image).
    end: u64,
    entries: Vec<FooterEntry<'a>>,
}

impl<'a> Ovmf<'a> {
    /// Parses the footer table of `data` (a whole `-bios` image, or its last pages).
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        Self::parse_ending_at(data, FOUR_GIB)
    }

    /// Parses an image that QEMU maps to end just below guest-physical address `end` (an SVSM
    /// image ends below the OVMF code and vars).
    pub fn parse_ending_at(data: &'a [u8], end: u64) -> Result<Self> {
        // An image ending at 4 GiB must leave page 0 free; one ending lower may start at 0.
        let size = data.len() as u64;
        if size > end || end > FOUR_GIB || size == FOUR_GIB {
            return Err(CvmError::FirmwareTooLarge { size, end });
        }
        let entries = parse_table(data)?;
        Ok(Ovmf { data, end, entries })
    }

    /// The whole image.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Guest-physical address of the first byte (the image ends at 4 GiB unless parsed with
    /// [`Ovmf::parse_ending_at`]).
    pub fn gpa(&self) -> u64 {
        self.end - self.data.len() as u64
    }

    /// The entries from the top of the table down (file order reversed).
    pub fn entries(&self) -> &[FooterEntry<'a>] {
        &self.entries
    }

    /// The entry for `guid`. With duplicates the lowest one wins, as in sev-snp-measure.
    pub fn entry(&self, guid: Guid) -> Option<&FooterEntry<'a>> {
        self.entries.iter().rev().find(|e| e.guid == guid)
    }

    /// The SEV-ES reset block value (`None` without that entry).
    pub fn sev_es_reset_eip(&self) -> Result<Option<u32>> {
        self.entry_u32(SEV_ES_RESET_BLOCK_GUID, "SEV-ES reset block", 0)
    }

    /// GPA of the SEV hash table (`None` without that entry; `Some(0)` = not supported).
    pub fn sev_hash_table_gpa(&self) -> Result<Option<u32>> {
        self.entry_u32(SEV_HASH_TABLE_GUID, "SEV hash table block", 0)
    }

    /// Whether the firmware can verify kernel/initrd/cmdline hashes (SEV and SEV-ES).
    pub fn supports_sev_hashes(&self) -> Result<bool> {
        Ok(self.sev_hash_table_gpa()?.is_some_and(|g| g != 0))
    }

    /// The SEV metadata sections (empty when the firmware has none).
    pub fn sev_metadata(&self) -> Result<Vec<SevSection>> {
        match self.entry_u32(SEV_METADATA_GUID, "SEV metadata offset", 0)? {
            None => Ok(Vec::new()),
            Some(off) => sevmeta::parse(self.data, off),
        }
    }

    /// The TDVF metadata (an error when the firmware has none).
    pub fn tdx_metadata(&self) -> Result<TdxMetadata> {
        match self.entry_u32(TDX_METADATA_GUID, "TDX metadata offset", 0)? {
            None => Err(CvmError::NoTdxMetadata {
                guid: "e47a6535-984a-4798-865e-4685a7bf8ec2",
            }),
            Some(off) => tdvf::parse(self.data, off),
        }
    }

    /// The SVSM entry point offset from the SVSM information block (`None` without it).
    pub fn svsm_entry_offset(&self) -> Result<Option<u32>> {
        self.entry_u32(SVSM_INFO_GUID, "SVSM information block", 0)
    }

    fn entry_u32(&self, guid: Guid, what: &'static str, at: usize) -> Result<Option<u32>> {
        let Some(e) = self.entry(guid) else {
            return Ok(None);
        };
        if e.data.len() < at + 4 {
            return Err(CvmError::Unexpected {
                what,
                offset: e.offset as u64,
                expected: format!("at least {} data bytes", at + 4),
                found: format!("{} bytes", e.data.len()),
            });
        }
        le_u32(e.data, at, what).map(Some)
    }
}

/// Walks the table downward from the footer entry.
fn parse_table(data: &[u8]) -> Result<Vec<FooterEntry<'_>>> {
    let size = data.len();
    let footer = size
        .checked_sub(RESET_AREA + ENTRY_HEADER)
        .ok_or(CvmError::Truncated {
            what: "OVMF footer entry",
            offset: size as i64 - (RESET_AREA + ENTRY_HEADER) as i64,
            len: ENTRY_HEADER as u64,
            size: size as u64,
        })?;
    let guid = slice(data, footer + 2, 16, "OVMF footer GUID")?;
    if guid != FOOTER_GUID.0 {
        return Ok(Vec::new());
    }
    let table_len = usize::from(le_u16(data, footer, "OVMF footer table length")?);
    let Some(body) = table_len.checked_sub(ENTRY_HEADER) else {
        return Ok(Vec::new());
    };
    let start = footer.checked_sub(body).ok_or(CvmError::Truncated {
        what: "OVMF footer table",
        offset: footer as i64 - body as i64,
        len: table_len as u64,
        size: size as u64,
    })?;
    walk_entries(data, start, footer)
}

fn walk_entries(data: &[u8], start: usize, end: usize) -> Result<Vec<FooterEntry<'_>>> {
    let mut entries = Vec::new();
    let mut pos = end;
    while pos - start >= ENTRY_HEADER {
        let len_at = pos - ENTRY_HEADER;
        let len = usize::from(le_u16(data, len_at, "OVMF footer table entry length")?);
        if len < ENTRY_HEADER || len > pos - start {
            return Err(CvmError::Unexpected {
                what: "OVMF footer table entry length",
                offset: len_at as u64,
                expected: format!("{ENTRY_HEADER} to {} (the rest of the table)", pos - start),
                found: len.to_string(),
            });
        }
        let guid = slice(data, pos - 16, 16, "OVMF footer table entry GUID")?;
        let mut g = [0u8; 16];
        g.copy_from_slice(guid);
        let offset = pos - len;
        entries.push(FooterEntry {
            guid: Guid(g),
            offset,
            data: slice(data, offset, len - ENTRY_HEADER, "OVMF footer table entry")?,
        });
        pos = offset;
    }
    Ok(entries)
}
