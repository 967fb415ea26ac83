//! GPT header and partition-entry parsing from bytes (UEFI spec §5.3; project spec §13.2).

use std::fmt;

use crate::guid::Guid;

/// Size of the part of the header covered by this parser (UEFI revision 1.0).
pub const HEADER_SIZE: usize = 92;

/// Upper bound on the entry array we are willing to read (the usual array is 16 KiB).
pub const MAX_ENTRY_ARRAY_BYTES: u64 = 1 << 20;

/// The fields of a GPT header the init needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// LBA this header claims to be at (1 for the primary header).
    pub my_lba: u64,
    /// LBA of the other header copy.
    pub alternate_lba: u64,
    /// Disk GUID.
    pub disk_guid: Guid,
    /// First LBA of the partition entry array.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub num_entries: u32,
    /// Size of one entry in bytes.
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc32: u32,
}

impl Header {
    /// Byte length of the entry array.
    pub fn entry_array_len(&self) -> u64 {
        u64::from(self.num_entries) * u64::from(self.entry_size)
    }
}

/// A used partition entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Partition number as Linux numbers it: entry index + 1.
    pub number: u32,
    /// Partition type GUID.
    pub type_guid: Guid,
    /// Unique partition GUID (PARTUUID).
    pub part_guid: Guid,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA, inclusive.
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
}

/// Why GPT bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GptError {
    /// The buffer is shorter than the structure.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        got: usize,
    },
    /// Offset 0 is not `EFI PART`.
    BadSignature,
    /// Header size field (offset 12) outside 92..=sector size.
    BadHeaderSize(u32),
    /// Header CRC32 (offset 16) does not match.
    HeaderCrc {
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// Entry size (offset 84) is not a multiple of 128 ≥ 128.
    BadEntrySize(u32),
    /// Entry array larger than [`MAX_ENTRY_ARRAY_BYTES`].
    EntryArrayTooLarge(u64),
    /// Entry array CRC32 (header offset 88) does not match.
    EntriesCrc {
        /// Stored value.
        stored: u32,
        /// Computed value.
        computed: u32,
    },
    /// A used entry whose last LBA precedes its first LBA.
    BadRange {
        /// Partition number.
        number: u32,
        /// First LBA.
        first: u64,
        /// Last LBA.
        last: u64,
    },
}

impl fmt::Display for GptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptError::Truncated { what, need, got } => {
                write!(f, "{what}: need {need} bytes, have {got}")
            }
            GptError::BadSignature => f.write_str("no `EFI PART` signature at header offset 0"),
            GptError::BadHeaderSize(n) => {
                write!(f, "header size {n} at offset 12: expected 92..=sector size")
            }
            GptError::HeaderCrc { stored, computed } => write!(
                f,
                "header CRC32 at offset 16 is {stored:#010x}, computed {computed:#010x}"
            ),
            GptError::BadEntrySize(n) => {
                write!(f, "entry size {n} at offset 84: expected a multiple of 128")
            }
            GptError::EntryArrayTooLarge(n) => write!(
                f,
                "entry array of {n} bytes exceeds the {MAX_ENTRY_ARRAY_BYTES}-byte limit"
            ),
            GptError::EntriesCrc { stored, computed } => write!(
                f,
                "entry array CRC32 (header offset 88) is {stored:#010x}, computed {computed:#010x}"
            ),
            GptError::BadRange {
                number,
                first,
                last,
            } => write!(
                f,
                "partition {number}: last LBA {last} precedes first LBA {first}"
            ),
        }
    }
}

impl std::error::Error for GptError {}

/// Parses and checks a header from the start of `sector` (one logical block).
pub fn parse_header(sector: &[u8]) -> Result<Header, GptError> {
    let head = sector.get(..HEADER_SIZE).ok_or(GptError::Truncated {
        what: "GPT header",
        need: HEADER_SIZE as u64,
        got: sector.len(),
    })?;
    if &head[0..8] != b"EFI PART" {
        return Err(GptError::BadSignature);
    }
    let size = le32(head, 12);
    let covered = usize::try_from(size)
        .ok()
        .filter(|&n| n >= HEADER_SIZE)
        .and_then(|n| sector.get(..n))
        .ok_or(GptError::BadHeaderSize(size))?;
    let stored = le32(head, 16);
    let mut copy = covered.to_vec();
    copy[16..20].fill(0);
    let computed = crc32(&copy);
    if stored != computed {
        return Err(GptError::HeaderCrc { stored, computed });
    }
    header_fields(head)
}

fn header_fields(head: &[u8]) -> Result<Header, GptError> {
    let entry_size = le32(head, 84);
    if entry_size < 128 || !entry_size.is_multiple_of(128) {
        return Err(GptError::BadEntrySize(entry_size));
    }
    let h = Header {
        my_lba: le64(head, 24),
        alternate_lba: le64(head, 32),
        disk_guid: guid_at(head, 56),
        entries_lba: le64(head, 72),
        num_entries: le32(head, 80),
        entry_size,
        entries_crc32: le32(head, 88),
    };
    if h.entry_array_len() > MAX_ENTRY_ARRAY_BYTES {
        return Err(GptError::EntryArrayTooLarge(h.entry_array_len()));
    }
    Ok(h)
}

/// Checks the entry array CRC and returns the used entries (non-nil type GUID).
pub fn parse_entries(header: &Header, array: &[u8]) -> Result<Vec<Partition>, GptError> {
    if header.entry_size < 128 || !header.entry_size.is_multiple_of(128) {
        return Err(GptError::BadEntrySize(header.entry_size));
    }
    let len = header.entry_array_len();
    let array = usize::try_from(len)
        .ok()
        .and_then(|n| array.get(..n))
        .ok_or(GptError::Truncated {
            what: "GPT entry array",
            need: len,
            got: array.len(),
        })?;
    let computed = crc32(array);
    if computed != header.entries_crc32 {
        return Err(GptError::EntriesCrc {
            stored: header.entries_crc32,
            computed,
        });
    }
    let step = header.entry_size as usize;
    let mut parts = Vec::new();
    for (index, entry) in array.chunks_exact(step).enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if let Some(p) = parse_entry(number, entry)? {
            parts.push(p);
        }
    }
    Ok(parts)
}

fn parse_entry(number: u32, e: &[u8]) -> Result<Option<Partition>, GptError> {
    let type_guid = guid_at(e, 0);
    if type_guid.is_nil() {
        return Ok(None);
    }
    let (first, last) = (le64(e, 32), le64(e, 40));
    if last < first {
        return Err(GptError::BadRange {
            number,
            first,
            last,
        });
    }
    Ok(Some(Partition {
        number,
        type_guid,
        part_guid: guid_at(e, 16),
        first_lba: first,
        last_lba: last,
        attributes: le64(e, 48),
    }))
}

// The helpers below are only called with offsets inside slices whose length was checked above.
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn guid_at(b: &[u8], off: usize) -> Guid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    Guid::from_gpt_bytes(a)
}

/// CRC-32/ISO-HDLC (the zlib/GPT CRC).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
#[path = "gpt_tests.rs"]
mod tests;
