//! The GPT disk image: protective MBR, primary and backup GPT (via the `gpt` crate), and each
//! partition's contents copied from its source file, with Discoverable Partitions Specification
//! (DPS) type GUIDs.
//!
//! GUIDs are handled in *text order* (the byte order of the written form, as systemd's
//! `sd_id128` and DPS use it); GPT stores them mixed-endian, see [`to_mixed_endian`]. The layout
//! is fixed by the inputs: 512-byte LBAs, 128 entries, partitions in the given order from the
//! first aligned offset after the primary table, each rounded up to the alignment, and one
//! alignment unit of slack before the backup table.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use gpt::partition_types::{OperatingSystem, Type};

mod read;

pub use read::{read, read_table, GptTable, PartInfo};

/// Bytes per logical block.
pub const LBA: u64 = 512;
/// The default partition alignment (1 MiB).
pub const DEFAULT_ALIGN: u64 = 1024 * 1024;
/// LBAs the primary table occupies: protective MBR, header, 128 × 128-byte entries.
const TABLE_LBAS: u64 = 2 + 32;

/// DPS type: EFI System Partition (`c12a7328-f81f-11d2-ba4b-00a0c93ec93b`).
pub const TYPE_ESP: [u8; 16] = guid(0xc12a7328, 0xf81f, 0x11d2, 0xba4b_00a0c93ec93b);
/// DPS type: root partition, x86-64 (`4f68bce3-e8cd-4db1-96e7-fbcaf984b709`).
pub const TYPE_ROOT_X86_64: [u8; 16] = guid(0x4f68bce3, 0xe8cd, 0x4db1, 0x96e7_fbcaf984b709);
/// DPS type: root verity hash partition, x86-64 (`2c7357ed-ebd2-46d9-aec1-23d437ec2bf5`).
pub const TYPE_ROOT_VERITY_X86_64: [u8; 16] = guid(0x2c7357ed, 0xebd2, 0x46d9, 0xaec1_23d437ec2bf5);

/// GPT attribute bit 60: read-only. systemd-repart sets it on verity data and hash partitions.
pub const ATTR_READ_ONLY: u64 = 1 << 60;
/// GPT attribute bit 59: grow the file system to the partition size.
pub const ATTR_GROW_FS: u64 = 1 << 59;
/// GPT attribute bit 63: do not auto-mount.
pub const ATTR_NO_AUTO: u64 = 1 << 63;

/// A GUID in text order from its written fields `aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee`.
const fn guid(a: u32, b: u16, c: u16, de: u64) -> [u8; 16] {
    let (a, b, c, de) = (
        a.to_be_bytes(),
        b.to_be_bytes(),
        c.to_be_bytes(),
        de.to_be_bytes(),
    );
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], de[0], de[1], de[2], de[3], de[4], de[5],
        de[6], de[7],
    ]
}

/// Converts a text-order GUID to the mixed-endian layout GPT stores (the first three fields
/// byte-swapped); the conversion is its own inverse.
pub fn to_mixed_endian(g: [u8; 16]) -> [u8; 16] {
    let mut m = g;
    m[..4].reverse();
    m[4..6].reverse();
    m[6..8].reverse();
    m
}

/// Converts a GUID as stored in GPT (mixed-endian) to text order.
pub fn from_mixed_endian(m: [u8; 16]) -> [u8; 16] {
    to_mixed_endian(m)
}

/// The lowercase text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` of a text-order GUID.
pub fn guid_to_string(g: &[u8; 16]) -> String {
    let h = hex::encode(g);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case) into text-order bytes.
pub fn guid_from_str(s: &str) -> Result<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    ensure!(
        lens == [8, 4, 4, 4, 12],
        "bad GUID {s:?}: expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
    );
    let mut out = [0u8; 16];
    hex::decode_to_slice(groups.concat(), &mut out)
        .with_context(|| format!("bad GUID {s:?}: not hex"))?;
    Ok(out)
}

/// One partition to place on the disk.
#[derive(Debug, Clone)]
pub struct PartSpec {
    /// Partition type GUID, text order (e.g. [`TYPE_ROOT_X86_64`]).
    pub type_guid: [u8; 16],
    /// Unique partition GUID, text order.
    pub unique_guid: [u8; 16],
    /// Partition name (at most 36 UTF-16 code units).
    pub name: String,
    /// Where the contents come from; the partition is their size rounded up to the alignment.
    pub source: Source,
    /// GPT attribute bits; use [`ATTR_READ_ONLY`] for verity data and hash partitions.
    pub attrs: u64,
}

/// The contents of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Copied from this file.
    File(PathBuf),
    /// Already written into the disk image at the offset [`lay_out`] gives this partition;
    /// this many bytes. Lets big partitions be produced in place instead of copied.
    InPlace(u64),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::InPlace(n) => format!("{n} bytes written in place"),
        }
    }
}

/// Where a partition landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Byte offset of the first LBA.
    pub offset: u64,
    /// Size in bytes (`(last - first + 1) × 512`).
    pub size: u64,
}

/// Writes the disk image `out`: the partitions of `parts` in order, each at an `align`-byte
/// boundary (a multiple of 512), then the protective MBR and both GPTs with disk GUID
/// `disk_guid` (text order). [`Source::File`] contents are copied file to file (never held in
/// memory); [`Source::InPlace`] contents must already be at their offset in `out`, which is then
/// kept (otherwise `out` is replaced). Returns where each partition was placed.
pub fn assemble(
    out: &Path,
    parts: &[PartSpec],
    disk_guid: [u8; 16],
    align: u64,
) -> Result<Vec<Placed>> {
    ensure!(
        align >= LBA && align.is_multiple_of(LBA),
        "partition alignment {align} is not a positive multiple of 512"
    );
    ensure!(
        !parts.is_empty() && parts.len() <= 128,
        "a GPT disk holds 1 to 128 partitions, got {}",
        parts.len()
    );
    let sizes = parts
        .iter()
        .map(|p| {
            source_size(p)
                .with_context(|| format!("partition {:?} ({})", p.name, p.source.describe()))
        })
        .collect::<Result<Vec<u64>>>()?;
    let (placed, total) = lay_out(&sizes, align)?;
    let mut disk = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(!parts.iter().any(|p| matches!(p.source, Source::InPlace(_))))
        .open(out)
        .with_context(|| format!("creating disk image {}", out.display()))?;
    disk.set_len(total)
        .with_context(|| format!("sizing disk image {}", out.display()))?;
    for ((p, at), size) in parts.iter().zip(&placed).zip(&sizes) {
        copy_into(&mut disk, p, at.offset, *size).with_context(|| {
            format!(
                "copying {} into partition {:?} of {}",
                p.source.describe(),
                p.name,
                out.display()
            )
        })?;
    }
    write_gpt(&mut disk, parts, &placed, disk_guid, total)
        .with_context(|| format!("writing the partition table of {}", out.display()))?;
    // No fsync here: outputs are staged and renamed, so an interrupted build never leaves a
    // file under a final name; durability across power loss is the caller's (or the OS's) call.
    Ok(placed)
}

fn source_size(p: &PartSpec) -> Result<u64> {
    let utf16 = p.name.encode_utf16().count();
    ensure!(
        utf16 <= 36,
        "the name is {utf16} UTF-16 code units long, GPT allows 36"
    );
    let size = match &p.source {
        Source::File(f) => std::fs::metadata(f)
            .context("reading the source's size")?
            .len(),
        Source::InPlace(n) => *n,
    };
    ensure!(size > 0, "the source is empty");
    Ok(size)
}

/// Places partitions of `sizes` bytes one after another; returns them and the disk size.
pub fn lay_out(sizes: &[u64], align: u64) -> Result<(Vec<Placed>, u64)> {
    let round = |x: u64| {
        x.div_ceil(align)
            .checked_mul(align)
            .context("disk size overflows 64 bits")
    };
    let mut offset = round(TABLE_LBAS * LBA)?;
    let mut placed = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let size = round(size)?;
        placed.push(Placed {
            first_lba: offset / LBA,
            last_lba: (offset + size) / LBA - 1,
            offset,
            size,
        });
        offset = offset
            .checked_add(size)
            .context("disk size overflows 64 bits")?;
    }
    // Room for the backup table (32 LBAs of entries + the header), rounded to the alignment.
    let total = round(offset + (TABLE_LBAS - 1) * LBA)?;
    Ok((placed, total))
}

/// Copies exactly `size` bytes of `p.source` to `offset` in `disk` (copy_file_range on Linux).
fn copy_into(disk: &mut File, p: &PartSpec, offset: u64, size: u64) -> Result<()> {
    let Source::File(path) = &p.source else {
        return Ok(());
    };
    let mut src = File::open(path).context("opening the source")?;
    disk.seek(SeekFrom::Start(offset))?;
    let copied = std::io::copy(&mut src, disk).context("copying")?;
    ensure!(
        copied == size,
        "copied {copied} bytes but the source had {size} (did it change?)"
    );
    Ok(())
}

/// Writes the protective MBR and the primary and backup GPT.
fn write_gpt(
    disk: &mut File,
    parts: &[PartSpec],
    placed: &[Placed],
    disk_guid: [u8; 16],
    total: u64,
) -> Result<()> {
    let entries = parts
        .iter()
        .zip(placed)
        .enumerate()
        .map(|(i, (p, at))| {
            let entry = gpt::partition::Partition {
                part_type_guid: Type {
                    guid: guid_to_string(&p.type_guid).parse()?,
                    os: OperatingSystem::None,
                },
                part_guid: guid_to_string(&p.unique_guid).parse()?,
                first_lba: at.first_lba,
                last_lba: at.last_lba,
                flags: p.attrs,
                name: p.name.clone(),
            };
            Ok((i as u32 + 1, entry))
        })
        .collect::<Result<_>>()?;
    let mut table = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(&mut *disk, Some(guid_to_string(&disk_guid).parse()?))
        .context("setting up the GPT")?;
    table
        .update_partitions(entries)
        .context("adding the partition entries")?;
    table
        .write()
        .context("writing the GPT headers and entries")?;
    let mbr_size = u32::try_from(total / LBA - 1).unwrap_or(u32::MAX);
    gpt::mbr::ProtectiveMBR::with_lb_size(mbr_size)
        .overwrite_lba0(disk)
        .context("writing the protective MBR")?;
    Ok(())
}

#[cfg(test)]
mod tests;

/// The DPS name of a partition type nodeimg writes (`esp`, `root-x86-64`, `root-x86-64-verity`).
pub fn type_name(t: &[u8; 16]) -> Option<&'static str> {
    match *t {
        TYPE_ESP => Some("esp"),
        TYPE_ROOT_X86_64 => Some("root-x86-64"),
        TYPE_ROOT_VERITY_X86_64 => Some("root-x86-64-verity"),
        _ => None,
    }
}
