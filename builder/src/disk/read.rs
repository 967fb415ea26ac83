//! Reading a GPT back: the primary header and entry array, with their CRCs checked.

use std::io::{Read, Seek, SeekFrom};

use anyhow::{bail, ensure, Context, Result};
use serde::{Serialize, Serializer};

use super::{from_mixed_endian, guid_to_string, LBA};

/// Upper bound on the entry array we are willing to read.
const MAX_ARRAY: u64 = 1024 * 1024;

/// One used partition entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartInfo {
    /// 1-based entry number (as in `/dev/sda1`).
    pub number: u32,
    /// Type GUID, text order.
    #[serde(serialize_with = "ser_guid")]
    pub type_guid: [u8; 16],
    /// Unique partition GUID, text order.
    #[serde(serialize_with = "ser_guid")]
    pub unique_guid: [u8; 16],
    /// Partition name.
    pub name: String,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attrs: u64,
    /// Byte offset.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The primary GPT of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GptTable {
    /// Disk GUID, text order.
    #[serde(serialize_with = "ser_guid")]
    pub disk_guid: [u8; 16],
    /// First LBA partitions may use.
    pub first_usable_lba: u64,
    /// Last LBA partitions may use.
    pub last_usable_lba: u64,
    /// LBA of the backup header.
    pub backup_lba: u64,
    /// Used entries in table order.
    pub partitions: Vec<PartInfo>,
    /// The `UEFI_GPT_DATA` firmware measures into PCR 5 (header, count, used entries).
    #[serde(skip)]
    pub measured: Vec<u8>,
}

fn ser_guid<S: Serializer>(g: &[u8; 16], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&guid_to_string(g))
}

/// Lists the partitions of the GPT disk `r` (512-byte LBAs).
pub fn read(r: impl Read + Seek) -> Result<Vec<PartInfo>> {
    Ok(read_table(r)?.partitions)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

fn guid_at(b: &[u8], at: usize) -> [u8; 16] {
    let mut g = [0u8; 16];
    g.copy_from_slice(&b[at..at + 16]);
    from_mixed_endian(g)
}

/// Reads and checks the primary GPT header and entry array of `r`.
pub fn read_table(mut r: impl Read + Seek) -> Result<GptTable> {
    let mut h = [0u8; LBA as usize];
    r.seek(SeekFrom::Start(LBA))
        .context("seeking to the GPT header at LBA 1")?;
    r.read_exact(&mut h)
        .context("reading the GPT header at LBA 1")?;
    ensure!(
        &h[..8] == b"EFI PART",
        "no GPT: LBA 1 (offset 0x200) starts with {:02x?}, expected \"EFI PART\"",
        &h[..8]
    );
    let header_size = le32(&h, 12) as usize;
    ensure!(
        (92..=512).contains(&header_size),
        "GPT header size {header_size} at offset 0x20c: expected 92..=512"
    );
    let mut zeroed = h;
    zeroed[16..20].fill(0);
    let crc = crc32fast::hash(&zeroed[..header_size]);
    ensure!(
        crc == le32(&h, 16),
        "GPT header CRC32 is {:#010x}, computed {crc:#010x}",
        le32(&h, 16)
    );
    ensure!(
        le64(&h, 24) == 1,
        "GPT header MyLBA is {}, expected 1",
        le64(&h, 24)
    );
    let (count, entry_size) = (u64::from(le32(&h, 80)), u64::from(le32(&h, 84)));
    ensure!(
        entry_size >= 128 && entry_size % 8 == 0 && count * entry_size <= MAX_ARRAY,
        "GPT entry array of {count} × {entry_size} bytes: expected entries of >= 128 bytes, at most {MAX_ARRAY} bytes"
    );
    let array = read_array(
        &mut r,
        le64(&h, 72),
        (count * entry_size) as usize,
        le32(&h, 88),
    )?;
    let partitions: Vec<PartInfo> = array
        .chunks_exact(entry_size as usize)
        .enumerate()
        .filter(|(_, e)| e[..16].iter().any(|&b| b != 0))
        .map(|(i, e)| entry(i as u32 + 1, e))
        .collect::<Result<_>>()?;
    let measured = measurements::pcr::gpt_event_data(&h, &array)?;
    let disk_lbas = r.seek(SeekFrom::End(0)).context("sizing the disk")? / LBA;
    let table = GptTable {
        disk_guid: guid_at(&h, 56),
        first_usable_lba: le64(&h, 40),
        last_usable_lba: le64(&h, 48),
        backup_lba: le64(&h, 32),
        partitions,
        measured,
    };
    check_bounds(&table, disk_lbas)?;
    Ok(table)
}

/// Every partition lies in the usable area, inside the disk, and overlaps no other.
fn check_bounds(t: &GptTable, disk_lbas: u64) -> Result<()> {
    ensure!(
        t.first_usable_lba <= t.last_usable_lba && t.last_usable_lba < disk_lbas,
        "GPT usable area LBA {}..={} does not fit the disk's {disk_lbas} LBAs",
        t.first_usable_lba,
        t.last_usable_lba
    );
    for p in &t.partitions {
        ensure!(
            p.first_lba <= p.last_lba
                && p.first_lba >= t.first_usable_lba
                && p.last_lba <= t.last_usable_lba,
            "GPT partition {} ({:?}) spans LBA {}..={}, outside the disk's usable area {}..={}",
            p.number,
            p.name,
            p.first_lba,
            p.last_lba,
            t.first_usable_lba,
            t.last_usable_lba
        );
    }
    let mut sorted: Vec<&PartInfo> = t.partitions.iter().collect();
    sorted.sort_by_key(|p| p.first_lba);
    for w in sorted.windows(2) {
        ensure!(
            w[0].last_lba < w[1].first_lba,
            "GPT partitions {} and {} overlap (LBA {}..={} and {}..={})",
            w[0].number,
            w[1].number,
            w[0].first_lba,
            w[0].last_lba,
            w[1].first_lba,
            w[1].last_lba
        );
    }
    Ok(())
}

fn read_array<R: Read + Seek>(r: &mut R, lba: u64, len: usize, want_crc: u32) -> Result<Vec<u8>> {
    let offset = lba
        .checked_mul(LBA)
        .context("GPT entry array LBA overflows")?;
    let mut array = vec![0u8; len];
    r.seek(SeekFrom::Start(offset))?;
    r.read_exact(&mut array)
        .with_context(|| format!("reading the GPT entry array at offset {offset:#x}"))?;
    let crc = crc32fast::hash(&array);
    if crc != want_crc {
        bail!("GPT entry array CRC32 is {want_crc:#010x}, computed {crc:#010x}");
    }
    Ok(array)
}

fn entry(number: u32, e: &[u8]) -> Result<PartInfo> {
    let (first_lba, last_lba) = (le64(e, 32), le64(e, 40));
    ensure!(
        last_lba >= first_lba,
        "GPT entry {number}: last LBA {last_lba} before first LBA {first_lba}"
    );
    let bytes = |lba: u64| {
        lba.checked_mul(LBA)
            .with_context(|| format!("GPT entry {number}: LBA {lba} overflows"))
    };
    let units: Vec<u16> = e[56..128]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    Ok(PartInfo {
        number,
        type_guid: guid_at(e, 0),
        unique_guid: guid_at(e, 16),
        name: String::from_utf16_lossy(&units[..end]),
        first_lba,
        last_lba,
        attrs: le64(e, 48),
        offset: bytes(first_lba)?,
        size: bytes(last_lba - first_lba + 1)?,
    })
}
