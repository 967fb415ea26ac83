//! dm-verity hash device (format 1, `veritysetup format`-compatible): 512-byte superblock,
//! hash tree with the top level first, root hash. Leaves are read and hashed in parallel
//! (rayon), one 1 MiB segment per task; only the digests (32 bytes per data block) are kept.
//! Within a task, blocks are hashed two at a time where the CPU has the SHA extensions
//! (`salted.rs`).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use anyhow::{ensure, Context, Result};
use rayon::prelude::*;

mod salted;
use salted::SaltedSha256;

const DIGEST: usize = 32;
/// Data one hashing task reads and hashes at a time.
const SEGMENT: usize = 1 << 20;

/// Parameters of a verity hash device (SHA-256, hash type 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub salt: Vec<u8>,
    /// Superblock UUID, text byte order.
    pub uuid: [u8; 16],
}

/// What `format` produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub root_hash: [u8; 32],
    pub data_blocks: u64,
    /// Bytes of the hash device (superblock block + tree).
    pub hash_size: u64,
}

/// A region of a file: the data device or hash device, possibly a partition of a disk image.
#[derive(Debug, Clone, Copy)]
pub struct Region<'a> {
    pub file: &'a File,
    pub offset: u64,
    pub len: u64,
}

/// Builds the hash device for `data` and writes it to `out` (superblock, then levels).
pub fn format(data: Region<'_>, out: &mut impl Write, p: &Params) -> Result<Info> {
    let (info, tree) = compute(data, p)?;
    out.write_all(&superblock(p, info.data_blocks))
        .context("writing the verity superblock")?;
    out.write_all(&tree)
        .context("writing the verity hash tree")?;
    Ok(info)
}

/// Checks `hash` (superblock + tree) against `data` and `root_hash`, in memory independent of
/// the sizes involved: every stored level-0 digest against its data block (segment by segment,
/// in parallel), every stored digest of a higher level against the stored block below it, the
/// zero padding at the end of each level, and the root against the top block. Every size read
/// from the superblock is checked arithmetic: a claim that overflows or exceeds the devices is
/// an error, never a wrap.
pub fn verify(data: Region<'_>, hash: Region<'_>, root_hash: &[u8]) -> Result<()> {
    let mut sb = [0u8; 512];
    ensure!(
        hash.len >= 512,
        "hash device is {} bytes, too small for a superblock",
        hash.len
    );
    hash.file
        .read_exact_at(&mut sb, hash.offset)
        .context("reading the verity superblock")?;
    let (p, data_blocks) = parse_superblock(&sb)?;
    let (dbs, hbs) = (u64::from(p.data_block_size), u64::from(p.hash_block_size));
    ensure!(data_blocks > 0, "verity superblock says 0 data blocks");
    let expect_len = data_blocks.checked_mul(dbs).with_context(|| {
        format!(
            "verity superblock claims {data_blocks} blocks of {dbs} bytes: more than 2^64 bytes"
        )
    })?;
    ensure!(
        data.len >= expect_len,
        "data device has {} bytes, superblock says {data_blocks} blocks of {dbs} bytes",
        data.len
    );
    // Hash blocks per level, bottom (level 0) up; no level for a single data block.
    let per = hbs / DIGEST as u64;
    let mut counts = Vec::new();
    let mut n = data_blocks;
    while n > 1 {
        n = n.div_ceil(per);
        counts.push(n);
    }
    let tree_blocks: u64 = counts.iter().sum();
    let tree_end = tree_blocks
        .checked_add(1)
        .and_then(|b| b.checked_mul(hbs))
        .context("verity hash tree size overflows")?;
    ensure!(
        hash.len >= tree_end,
        "hash device is truncated: {} bytes, the tree for {data_blocks} data blocks needs {tree_end}",
        hash.len
    );
    // Levels are stored top first, after the superblock's block.
    let level_off =
        |level: usize| -> u64 { hash.offset + hbs + counts[level + 1..].iter().sum::<u64>() * hbs };
    let salted = SaltedSha256::new(&p.salt);
    let stored_at = |what: &str, at: u64, len: usize| -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        hash.file
            .read_exact_at(&mut v, at)
            .with_context(|| format!("reading the stored {what} at byte {}", at - hash.offset))?;
        Ok(v)
    };
    let differs = |at: u64| {
        anyhow::anyhow!(
            "stored hash tree differs from the data at hash-device byte {}",
            at - hash.offset
        )
    };
    if counts.is_empty() {
        // One data block: its digest is the root.
        let mut block = vec![0u8; dbs as usize];
        data.file
            .read_exact_at(&mut block, data.offset)
            .context("reading the verity data device")?;
        return check_root(&salted.one(&block), root_hash);
    }
    // Level 0: the data blocks, one segment per task.
    let per_seg = (SEGMENT as u64 / dbs).max(1);
    let segments = data_blocks.div_ceil(per_seg);
    let file_len = data.file.metadata()?.len();
    let base0 = level_off(0);
    (0..segments)
        .into_par_iter()
        .try_for_each(|seg| -> Result<()> {
            let first = seg * per_seg;
            let k = per_seg.min(data_blocks - first);
            let at = data.offset + first * dbs;
            let len = (k * dbs) as usize;
            let stored = stored_at(
                "level-0 digests",
                base0 + first * DIGEST as u64,
                k as usize * DIGEST,
            )?;
            let check = |bytes: &[u8]| -> Result<()> {
                let mut got = vec![0u8; stored.len()];
                salted.blocks(bytes, dbs as usize, &mut got);
                match got
                    .chunks(DIGEST)
                    .zip(stored.chunks(DIGEST))
                    .position(|(g, w)| g != w)
                {
                    Some(i) => Err(differs(base0 + (first + i as u64) * DIGEST as u64)),
                    None => Ok(()),
                }
            };
            if let Some(map) = crate::mmap::Mapping::new(data.file, file_len, at, len) {
                return check(map.bytes());
            }
            let mut buf = vec![0u8; len];
            data.file.read_exact_at(&mut buf, at).with_context(|| {
                format!(
                    "reading the verity data device at byte {}",
                    at - data.offset
                )
            })?;
            check(&buf)
        })?;
    // Each level's padding, and each stored block against the digest one level up.
    let mut entries = data_blocks;
    for (level, &blocks) in counts.iter().enumerate() {
        let off = level_off(level);
        let used = entries * DIGEST as u64;
        let pad = stored_at(
            "hash-level padding",
            off + used,
            (blocks * hbs - used) as usize,
        )?;
        if let Some(i) = pad.iter().position(|&b| b != 0) {
            return Err(differs(off + used + i as u64));
        }
        if blocks == 1 {
            let top = stored_at("top hash block", off, hbs as usize)?;
            return check_root(&salted.one(&top), root_hash);
        }
        let up = level_off(level + 1);
        const BATCH: u64 = 256;
        for first in (0..blocks).step_by(BATCH as usize) {
            let k = BATCH.min(blocks - first);
            let below = stored_at("hash blocks", off + first * hbs, (k * hbs) as usize)?;
            let want = stored_at(
                "hash digests",
                up + first * DIGEST as u64,
                k as usize * DIGEST,
            )?;
            let mut got = vec![0u8; want.len()];
            salted.blocks(&below, hbs as usize, &mut got);
            if let Some(i) = got
                .chunks(DIGEST)
                .zip(want.chunks(DIGEST))
                .position(|(g, w)| g != w)
            {
                return Err(differs(up + (first + i as u64) * DIGEST as u64));
            }
        }
        entries = blocks;
    }
    unreachable!("the last level has one block")
}

fn check_root(got: &[u8], want: &[u8]) -> Result<()> {
    ensure!(
        got == want,
        "root hash mismatch: data gives {}, expected {}",
        hex::encode(got),
        hex::encode(want)
    );
    Ok(())
}

/// The 512-byte superblock (cryptsetup `struct verity_sb`), zero-padded to a hash block.
pub fn superblock(p: &Params, data_blocks: u64) -> Vec<u8> {
    let mut sb = vec![0u8; p.hash_block_size as usize];
    sb[0..8].copy_from_slice(b"verity\0\0");
    sb[8..12].copy_from_slice(&1u32.to_le_bytes());
    sb[12..16].copy_from_slice(&1u32.to_le_bytes());
    sb[16..32].copy_from_slice(&p.uuid);
    sb[32..38].copy_from_slice(b"sha256");
    sb[64..68].copy_from_slice(&p.data_block_size.to_le_bytes());
    sb[68..72].copy_from_slice(&p.hash_block_size.to_le_bytes());
    sb[72..80].copy_from_slice(&data_blocks.to_le_bytes());
    sb[80..82].copy_from_slice(&(p.salt.len() as u16).to_le_bytes());
    sb[88..88 + p.salt.len()].copy_from_slice(&p.salt);
    sb
}

/// Parses and checks a superblock; returns the parameters and `data_blocks`.
pub fn parse_superblock(sb: &[u8]) -> Result<(Params, u64)> {
    ensure!(
        sb.len() >= 512,
        "verity superblock is {} bytes, need 512",
        sb.len()
    );
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().expect("4 bytes"));
    ensure!(
        &sb[0..8] == b"verity\0\0",
        "no verity superblock (signature at offset 0 is {:02x?})",
        &sb[0..8]
    );
    ensure!(
        u32_at(8) == 1,
        "verity superblock version {} (expected 1)",
        u32_at(8)
    );
    ensure!(
        u32_at(12) == 1,
        "verity hash type {} (only type 1 is supported)",
        u32_at(12)
    );
    let alg = sb[32..64].split(|&b| b == 0).next().unwrap_or_default();
    ensure!(
        alg == b"sha256",
        "verity hash algorithm `{}` (only sha256)",
        String::from_utf8_lossy(alg)
    );
    let (dbs, hbs) = (u32_at(64), u32_at(68));
    for (what, v) in [("data", dbs), ("hash", hbs)] {
        ensure!(
            v.is_power_of_two() && (512..=65536).contains(&v),
            "bad verity {what} block size {v}"
        );
    }
    let salt_len = u16::from_le_bytes([sb[80], sb[81]]) as usize;
    ensure!(salt_len <= 256, "verity salt size {salt_len} > 256");
    let p = Params {
        data_block_size: dbs,
        hash_block_size: hbs,
        salt: sb[88..88 + salt_len].to_vec(),
        uuid: sb[16..32].try_into().expect("16 bytes"),
    };
    Ok((
        p,
        u64::from_le_bytes(sb[72..80].try_into().expect("8 bytes")),
    ))
}

/// Hashes the data and builds the tree bytes (top level first), without the superblock.
fn compute(data: Region<'_>, p: &Params) -> Result<(Info, Vec<u8>)> {
    let dbs = p.data_block_size as usize;
    let hbs = p.hash_block_size as usize;
    ensure!(
        data.len > 0 && data.len.is_multiple_of(dbs as u64),
        "data device size {} is not a positive multiple of the {dbs}-byte verity block",
        data.len
    );
    ensure!(p.salt.len() <= 256, "verity salt longer than 256 bytes");
    let data_blocks = data.len / dbs as u64;
    let salted = SaltedSha256::new(&p.salt);
    let mut cur = hash_leaves(data, dbs, &salted)?;
    let mut levels: Vec<Vec<u8>> = Vec::new();
    while cur.len() > DIGEST {
        let per_block = hbs / DIGEST;
        let nblocks = (cur.len() / DIGEST).div_ceil(per_block);
        let mut level = vec![0u8; nblocks * hbs];
        for (i, d) in cur.chunks(DIGEST).enumerate() {
            let at = (i / per_block) * hbs + (i % per_block) * DIGEST;
            level[at..at + DIGEST].copy_from_slice(d);
        }
        cur = vec![0u8; nblocks * DIGEST];
        const BATCH: usize = 256;
        level
            .par_chunks(hbs * BATCH)
            .zip(cur.par_chunks_mut(DIGEST * BATCH))
            .for_each(|(b, d)| salted.blocks(b, hbs, d));
        levels.push(level);
    }
    let root_hash: [u8; 32] = cur[..].try_into().context("no root digest")?;
    let tree: Vec<u8> = levels.iter().rev().flatten().copied().collect();
    let hash_size = (hbs + tree.len()) as u64;
    Ok((
        Info {
            root_hash,
            data_blocks,
            hash_size,
        },
        tree,
    ))
}

/// Level-0 digests of every data block, concatenated, hashed in parallel one 1 MiB segment per
/// task. Where the region starts on a page boundary (always, for partitions) each task maps its
/// segment read-only and hashes the page cache in place, with no copy, then unmaps it (so the
/// resident set stays at one segment per thread); otherwise, or if `mmap` fails, it reads the
/// segment into a per-thread buffer with a positioned read.
fn hash_leaves(data: Region<'_>, dbs: usize, salted: &SaltedSha256) -> Result<Vec<u8>> {
    thread_local!(static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
    let blocks = (data.len / dbs as u64) as usize;
    let per_seg = SEGMENT / dbs;
    let mut out = vec![0u8; blocks * DIGEST];
    let file_len = data.file.metadata()?.len();
    out.par_chunks_mut(per_seg * DIGEST)
        .enumerate()
        .try_for_each(|(i, dst)| {
            let n = dst.len() / DIGEST * dbs;
            let at = data.offset + (i * per_seg * dbs) as u64;
            let hash = |bytes: &[u8], dst: &mut [u8]| salted.blocks(bytes, dbs, dst);
            if let Some(map) = crate::mmap::Mapping::new(data.file, file_len, at, n) {
                hash(map.bytes(), dst);
                return Ok(());
            }
            BUF.with_borrow_mut(|buf| {
                buf.resize(n, 0);
                data.file
                    .read_exact_at(&mut buf[..n], at)
                    .with_context(|| format!("reading the verity data device at byte {at}"))?;
                hash(&buf[..n], dst);
                Ok::<(), anyhow::Error>(())
            })
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            data_block_size: 4096,
            hash_block_size: 4096,
            salt: (0u8..32).collect(),
            uuid: [0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    fn run(data: &[u8]) -> (Info, Vec<u8>) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        let mut out = Vec::new();
        let info = format(
            Region {
                file: &f,
                offset: 0,
                len: data.len() as u64,
            },
            &mut out,
            &params(),
        )
        .unwrap();
        (info, out)
    }

    /// Vector from the spec (§11.2), reproduced with veritysetup 2.6.1.
    #[test]
    fn eight_zero_blocks_known_answer() {
        let (info, out) = run(&[0u8; 8 * 4096]);
        assert_eq!(
            hex::encode(info.root_hash),
            "01481fa9a68ec9fd230c9f89013058f02060bc1be69f584f2b32261fed80086d"
        );
        assert_eq!(
            hex::encode(&out[4096..4096 + 32]),
            "4ce3ecf32c133bf6321901b6092219474b6ac91a19d0304621d629e6bb9987dc"
        );
        assert_eq!(out.len(), 2 * 4096);
        assert_eq!(&out[..16], b"verity\0\0\x01\0\0\0\x01\0\0\0");
        assert_eq!(info.hash_size, out.len() as u64);
    }

    #[test]
    fn level_counts_match_the_spec() {
        for (blocks, hash_blocks) in [(1u64, 1u64), (2, 2), (128, 2), (129, 4), (389, 6)] {
            let (info, out) = run(&vec![7u8; blocks as usize * 4096]);
            assert_eq!(out.len() as u64, hash_blocks * 4096, "{blocks} data blocks");
            assert_eq!(info.data_blocks, blocks);
        }
    }

    /// Data and its formatted hash device as two temp files.
    fn formatted(data: &[u8], p: &Params) -> (File, File, Info, u64) {
        let mut df = tempfile::tempfile().unwrap();
        df.write_all(data).unwrap();
        let mut hash = Vec::new();
        let region = Region {
            file: &df,
            offset: 0,
            len: data.len() as u64,
        };
        let info = format(region, &mut hash, p).unwrap();
        let mut hf = tempfile::tempfile().unwrap();
        hf.write_all(&hash).unwrap();
        (df, hf, info, hash.len() as u64)
    }

    fn check(df: &File, dlen: u64, hf: &File, hlen: u64, root: &[u8]) -> Result<()> {
        let d = Region {
            file: df,
            offset: 0,
            len: dlen,
        };
        let h = Region {
            file: hf,
            offset: 0,
            len: hlen,
        };
        verify(d, h, root)
    }

    #[test]
    fn verify_accepts_own_output_for_every_tree_shape() {
        for (blocks, dbs) in [
            (1u64, 4096u32),
            (2, 4096),
            (128, 4096),
            (129, 4096),
            (389, 4096),
            (3000, 512),
        ] {
            let p = Params {
                data_block_size: dbs,
                ..params()
            };
            let data: Vec<u8> = (0..blocks * u64::from(dbs))
                .map(|i| (i % 251) as u8)
                .collect();
            let (df, hf, info, hlen) = formatted(&data, &p);
            check(&df, data.len() as u64, &hf, hlen, &info.root_hash)
                .unwrap_or_else(|e| panic!("{blocks} blocks of {dbs}: {e:#}"));
            let e = check(&df, data.len() as u64, &hf, hlen, &[0; 32]).unwrap_err();
            assert!(e.to_string().contains("root hash mismatch"), "{e}");
        }
    }

    #[test]
    fn verify_names_a_flipped_data_tree_or_padding_byte() {
        // 300 blocks: level 0 = 3 hash blocks at 8192.., level 1 = 1 block at 4096.
        let data: Vec<u8> = (0..300 * 4096u32).map(|i| (i % 251) as u8).collect();
        let (df, hf, info, hlen) = formatted(&data, &params());
        let dlen = data.len() as u64;
        df.write_all_at(&[1], 5000).unwrap();
        let e = check(&df, dlen, &hf, hlen, &info.root_hash)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("differs from the data at hash-device byte 8224"),
            "{e}"
        );
        df.write_all_at(&data[5000..5001], 5000).unwrap();
        // A level-0 hash block edited consistently with nothing: level 1 names it.
        hf.write_all_at(&[0xaa], 8192 + 4096 + 7).unwrap();
        let e = check(&df, dlen, &hf, hlen, &info.root_hash)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hash-device byte"), "{e}");
        hf.write_all_at(&[0], 8192 + 4096 + 7).unwrap();
        // A byte in level 0's padding (300 digests end at 8192 + 9600).
        let (df, hf, info, hlen) = formatted(&data, &params());
        hf.write_all_at(&[1], 8192 + 9600 + 5).unwrap();
        let e = check(&df, dlen, &hf, hlen, &info.root_hash)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hash-device byte 17797"), "{e}");
    }

    #[test]
    fn a_superblock_claiming_wrapping_or_huge_sizes_is_refused() {
        let data: Vec<u8> = (0..16 * 4096u32).map(|i| (i % 241) as u8).collect();
        let (df, hf, info, hlen) = formatted(&data, &params());
        let dlen = data.len() as u64;
        // data_blocks + 2^52: times 4096 it wraps to the true size.
        hf.write_all_at(&(16u64 + (1 << 52)).to_le_bytes(), 72)
            .unwrap();
        let e = check(&df, dlen, &hf, hlen, &info.root_hash)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 2^64 bytes"), "{e}");
        // 2^40 blocks: no wrap, more than the device holds.
        hf.write_all_at(&(1u64 << 40).to_le_bytes(), 72).unwrap();
        let e = check(&df, dlen, &hf, hlen, &info.root_hash)
            .unwrap_err()
            .to_string();
        assert!(e.contains("data device has"), "{e}");
        // Fewer blocks than the data: the tree the superblock implies is not the stored one.
        hf.write_all_at(&8u64.to_le_bytes(), 72).unwrap();
        assert!(check(&df, dlen, &hf, hlen, &info.root_hash).is_err());
    }

    #[test]
    fn offset_regions_agree_and_a_short_file_is_an_error() {
        let data: Vec<u8> = (0..200 * 4096u32).map(|i| (i % 253) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[9; 100]).unwrap();
        f.write_all(&data).unwrap();
        let (mapped, _) = run(&data);
        let mut out = Vec::new();
        let read = format(
            Region {
                file: &f,
                offset: 100,
                len: data.len() as u64,
            },
            &mut out,
            &params(),
        )
        .unwrap();
        assert_eq!(read, mapped);
        let e = format(
            Region {
                file: &f,
                offset: 4096,
                len: data.len() as u64,
            },
            &mut Vec::new(),
            &params(),
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("reading the verity data device"));
    }

    #[test]
    fn bad_input_is_refused() {
        let f = tempfile::tempfile().unwrap();
        assert!(format(
            Region {
                file: &f,
                offset: 0,
                len: 100
            },
            &mut Vec::new(),
            &params()
        )
        .is_err());
        assert!(parse_superblock(&[0u8; 512])
            .unwrap_err()
            .to_string()
            .contains("no verity superblock"));
    }
}
