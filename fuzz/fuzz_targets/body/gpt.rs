//! Body of the `gpt` fuzz target, shared with the stable replay test
//! `builder/tests/fuzz_corpus_gpt.rs` (included there by path): the GPT reader
//! `builder::disk::read_table` on an in-memory disk. Errors are fine; a panic is a bug.
//!
//! Random mutations almost never keep the header and entry-array CRC32s valid, so every input
//! is also read a second time with both CRCs recomputed, to reach the checks behind them.

use std::io::Cursor;

const LBA: usize = 512;

/// Reads the primary GPT of the disk image `data`, as is and with its CRCs fixed up.
pub fn run(data: &[u8]) {
    read(data);
    let mut fixed = data.to_vec();
    if fix_crcs(&mut fixed) {
        read(&fixed);
    }
}

fn read(data: &[u8]) {
    if let Ok(table) = builder::disk::read_table(Cursor::new(data)) {
        for p in &table.partitions {
            let _ = builder::disk::type_name(&p.type_guid);
            let _ = builder::disk::guid_to_string(&p.unique_guid);
        }
    }
    let _ = builder::disk::read(Cursor::new(data));
}

/// Rewrites the entry-array and header CRC32 of the primary header at LBA 1 (UEFI 2.10
/// §5.3.2); `false` when the header or the array is not inside `d`.
pub fn fix_crcs(d: &mut [u8]) -> bool {
    if d.len() < 2 * LBA {
        return false;
    }
    let field = |d: &[u8], at: usize, n: usize| -> Option<u64> {
        let b = d.get(LBA + at..LBA + at + n)?;
        Some(b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x)))
    };
    let (Some(hsize), Some(elba), Some(count), Some(esize)) = (
        field(d, 12, 4),
        field(d, 72, 8),
        field(d, 80, 4),
        field(d, 84, 4),
    ) else {
        return false;
    };
    let start = usize::try_from(elba).ok().and_then(|l| l.checked_mul(LBA));
    let len = usize::try_from(count * esize).ok();
    let Some(entries) = start
        .zip(len)
        .and_then(|(s, n)| d.get(s..s.checked_add(n)?))
    else {
        return false;
    };
    let ecrc = crc32(entries);
    d[LBA + 88..LBA + 92].copy_from_slice(&ecrc.to_le_bytes());
    let hsize = usize::try_from(hsize).unwrap_or(0).clamp(92, LBA);
    d[LBA + 16..LBA + 20].fill(0);
    let hcrc = crc32(&d[LBA..LBA + hsize]);
    d[LBA + 16..LBA + 20].copy_from_slice(&hcrc.to_le_bytes());
    true
}

/// CRC-32/ISO-HDLC (the zlib / GPT CRC), bitwise.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
