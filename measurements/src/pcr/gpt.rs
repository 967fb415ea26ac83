//! PCR 5 as edk2's firmware measures it for a boot from a GPT disk (`uki-pcr-verity.md`;
//! `SecurityPkg/Library/DxeTpm2MeasureBootLib`, `Tcg2MeasureGptTable`, and `Tcg2Dxe`'s
//! ReadyToBoot and ExitBootServices handlers), observed on OVMF 2022.11 + swtpm:
//!
//! 1. `EV_SEPARATOR` (4 zero bytes) at the first ReadyToBoot, with the PCR 0–6 separators;
//! 2. `EV_EFI_GPT_EVENT` when the boot option's disk is first used: `UEFI_GPT_DATA` = the
//!    primary GPT header as read from LBA 1 (its first 92 bytes, `sizeof (EFI_PARTITION_TABLE_HEADER)`,
//!    whatever `HeaderSize` says), a UINT64 count of the
//!    used entries, and each used entry (non-zero type GUID) in table order, `SizeOfPartitionEntry`
//!    bytes each;
//! 3. `EV_EFI_ACTION` "Exit Boot Services Invocation" and
//! 4. `EV_EFI_ACTION` "Exit Boot Services Returned with Success", when the kernel's EFI stub
//!    leaves boot services.

use thiserror::Error;

/// `EV_EFI_ACTION` data when ExitBootServices is called.
pub const EXIT_BOOT_SERVICES_INVOCATION: &str = "Exit Boot Services Invocation";
/// `EV_EFI_ACTION` data when ExitBootServices succeeded.
pub const EXIT_BOOT_SERVICES_SUCCESS: &str = "Exit Boot Services Returned with Success";

/// Largest entry array read for the event (edk2 reads the whole array; GPTs have 16 KiB).
const MAX_ARRAY: usize = 1 << 20;

/// Why the GPT event cannot be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GptError {
    /// The header is not a GPT header of a usable size.
    #[error("GPT header: {0}")]
    Header(String),
    /// The entry array does not match the header.
    #[error("GPT entry array: {0}")]
    Entries(String),
}

/// The `UEFI_GPT_DATA` the firmware measures: `header` is LBA 1 (at least `HeaderSize` bytes),
/// of which the first 92 are measured;
/// `entries` the partition entry array (`NumberOfPartitionEntries` × `SizeOfPartitionEntry`
/// bytes) as stored on the disk.
pub fn gpt_event_data(header: &[u8], entries: &[u8]) -> Result<Vec<u8>, GptError> {
    let le32 = |at: usize| -> u32 {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if header.len() < 92 || &header[..8] != b"EFI PART" {
        return Err(GptError::Header(
            "not a GPT header (no \"EFI PART\" in 92 bytes)".into(),
        ));
    }
    let header_size = le32(12) as usize;
    if !(92..=header.len()).contains(&header_size) {
        return Err(GptError::Header(format!(
            "HeaderSize {header_size} is outside 92..={}",
            header.len()
        )));
    }
    let (count, size) = (le32(80) as usize, le32(84) as usize);
    if size < 128 || count.checked_mul(size).is_none_or(|n| n > MAX_ARRAY) {
        return Err(GptError::Entries(format!(
            "{count} entries of {size} bytes: expected entries of at least 128 bytes, at most {MAX_ARRAY} bytes in all"
        )));
    }
    if entries.len() < count * size {
        return Err(GptError::Entries(format!(
            "{} bytes given, the header says {count} × {size}",
            entries.len()
        )));
    }
    let used: Vec<&[u8]> = entries[..count * size]
        .chunks_exact(size)
        .filter(|e| e[..16].iter().any(|&b| b != 0))
        .collect();
    let mut out = Vec::with_capacity(92 + 8 + used.len() * size);
    out.extend_from_slice(&header[..92]);
    out.extend_from_slice(&(used.len() as u64).to_le_bytes());
    for e in used {
        out.extend_from_slice(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(count: u32, size: u32) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(b"EFI PART");
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[80..84].copy_from_slice(&count.to_le_bytes());
        h[84..88].copy_from_slice(&size.to_le_bytes());
        h[100] = 0xee; // past HeaderSize: not measured
        h
    }

    #[test]
    fn used_entries_only_after_the_92_byte_header_and_a_count() {
        let mut entries = vec![0u8; 4 * 128];
        entries[128] = 1; // entry 2 used
        entries[3 * 128 + 15] = 2; // entry 4 used
        entries[3 * 128 + 127] = 9;
        let d = gpt_event_data(&header(4, 128), &entries).unwrap();
        assert_eq!(d.len(), 92 + 8 + 2 * 128);
        assert_eq!(&d[..8], b"EFI PART");
        assert_eq!(u64::from_le_bytes(d[92..100].try_into().unwrap()), 2);
        assert_eq!(&d[100..228], &entries[128..256]);
        assert_eq!(&d[228..], &entries[384..512]);
    }

    #[test]
    fn bad_headers_and_arrays_are_refused() {
        assert!(gpt_event_data(&[0u8; 512], &[]).is_err());
        assert!(gpt_event_data(&header(4, 64), &[0u8; 256]).is_err());
        assert!(gpt_event_data(&header(4, 128), &[0u8; 256]).is_err());
        assert!(gpt_event_data(&header(u32::MAX, 128), &[]).is_err());
        let mut h = header(1, 128);
        h[12..16].copy_from_slice(&600u32.to_le_bytes());
        assert!(gpt_event_data(&h, &[0u8; 128]).is_err());
    }
}
