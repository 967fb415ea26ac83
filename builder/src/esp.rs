//! The EFI System Partition: a FAT32 image holding `\EFI\BOOT\BOOTX64.EFI`, written without
//! root, loop devices or mounts.
//!
//! The image is written by the small FAT32 writer in [`fat32`] rather than the `fatfs` crate:
//! fatfs 0.3.6 writes long-name entries in front of the `.` and `..` entries of every new
//! directory and points `..` of a first-level directory at cluster 2 instead of 0, both of which
//! `fsck.vfat` rejects, and leaves the FSInfo free count unset. `fatfs` is still used to read
//! images back ([`read_file`], [`list`]), which doubles as an independent check of the writer.
//!
//! Output depends only on the arguments: the volume id and label are given, every entry's
//! timestamps come from SOURCE_DATE_EPOCH (never the wall clock), entries are laid out in name
//! order, and unused space is zero. Names are stored as upper-case 8.3 short names; long file
//! names are not supported.

use std::fs::OpenOptions;
use std::path::Path;

use anyhow::{ensure, Context, Result};

pub mod fat32;
mod read;

pub use read::{list, list_names, read_file, Item, Listing, Window};

use fat32::{DosTime, Geometry, Volume};

/// The smallest image [`build`] accepts: with 512-byte sectors and clusters FAT32 needs at
/// least 65525 clusters plus its tables.
pub const MIN_SIZE: u64 = 33 * 1024 * 1024;

/// Writes a FAT32 image of `size` bytes to `path` (replacing it) containing `files`, each a
/// `/`-separated path of 8.3 names such as `EFI/BOOT/BOOTX64.EFI` with its contents.
/// Directories are created as needed; every timestamp is `epoch` (seconds since 1970, UTC,
/// clamped to the FAT range 1980–2107).
pub fn build(
    path: &Path,
    size: u64,
    files: &[(&str, &[u8])],
    volume_id: u32,
    label: &str,
    epoch: u64,
) -> Result<()> {
    ensure!(
        size.is_multiple_of(512),
        "ESP size {size} is not a multiple of 512 bytes"
    );
    ensure!(
        size >= MIN_SIZE,
        "ESP size {size} is below the FAT32 minimum of {MIN_SIZE} bytes (33 MiB)"
    );
    let geo = Geometry::new(size)?;
    let vol = Volume {
        id: volume_id,
        label: volume_label(label)?,
        time: dos_datetime(epoch),
    };
    let mut root = fat32::Dir::default();
    for (name, data) in files {
        let parts = components(name)?;
        root.insert(&parts, data)
            .with_context(|| format!("adding {name} to the ESP"))?;
    }
    let img = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating ESP image {}", path.display()))?;
    img.set_len(size)
        .with_context(|| format!("sizing ESP image {}", path.display()))?;
    fat32::write(&img, &geo, &root, &vol)
        .with_context(|| format!("writing ESP image {}", path.display()))?;
    img.sync_all()
        .with_context(|| format!("syncing ESP image {}", path.display()))
}

/// The 8.3 short names of the components of `path`.
fn components(path: &str) -> Result<Vec<[u8; 11]>> {
    ensure!(
        path.split('/')
            .all(|p| !p.is_empty() && p != "." && p != ".."),
        "bad ESP path {path:?}: expected a relative path like EFI/BOOT/BOOTX64.EFI"
    );
    path.split('/')
        .map(fat32::short_name)
        .collect::<Result<_>>()
        .with_context(|| format!("bad ESP path {path:?}"))
}

/// The 11-byte, space-padded, upper-case FAT volume label.
fn volume_label(label: &str) -> Result<[u8; 11]> {
    const FORBIDDEN: &[u8] = b"\"*+,./:;<=>?[\\]|";
    let ok = !label.is_empty()
        && label.len() <= 11
        && label
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !FORBIDDEN.contains(&b));
    ensure!(
        ok,
        "bad FAT volume label {label:?}: expected 1-11 ASCII characters, none of {}",
        "\"*+,./:;<=>?[\\]|"
    );
    let mut out = [b' '; 11];
    out[..label.len()].copy_from_slice(label.to_ascii_uppercase().as_bytes());
    Ok(out)
}

/// The FAT date and time (UTC) of `epoch`, clamped to 1980-01-01 00:00:00 … 2107-12-31 23:59:58.
pub fn dos_datetime(epoch: u64) -> DosTime {
    const MIN: u64 = 315_532_800; // 1980-01-01T00:00:00Z
    const MAX: u64 = 4_354_819_198; // 2107-12-31T23:59:58Z
    let t = epoch.clamp(MIN, MAX);
    let (days, secs) = (t / 86_400, t % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, min, sec) = (
        (secs / 3600) as u16,
        (secs / 60 % 60) as u16,
        (secs % 60) as u16,
    );
    DosTime {
        date: ((year - 1980) << 9) | (month << 5) | day,
        time: (hour << 11) | (min << 5) | (sec / 2),
        tenth: (sec % 2 * 100) as u8,
    }
}

/// Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u16, u16, u16) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year as u16, month as u16, day as u16)
}

#[cfg(test)]
mod tests;
