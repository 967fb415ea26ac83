//! dm-verity hash device (format 1, `veritysetup format`-compatible): 512-byte superblock,
//! hash tree with the top level first, root hash. Leaves are read and hashed in parallel
//! (rayon), one 1 MiB segment per task; only the digests (32 bytes per data block) are kept.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

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

/// Recomputes the tree for `data` with the parameters in `hash`'s superblock and checks it
/// equals the stored tree and that the root hash is `root_hash`.
pub fn verify(data: Region<'_>, hash: Region<'_>, root_hash: &[u8]) -> Result<()> {
    let mut sb = [0u8; 512];
    hash.file
        .read_exact_at(&mut sb, hash.offset)
        .context("reading the verity superblock")?;
    let (p, data_blocks) = parse_superblock(&sb)?;
    let expect_len = data_blocks * u64::from(p.data_block_size);
    ensure!(
        data.len >= expect_len,
        "data device has {} bytes, superblock says {data_blocks} blocks",
        data.len
    );
    let (info, tree) = compute(
        Region {
            len: expect_len,
            ..data
        },
        &p,
    )?;
    ensure!(
        info.root_hash[..] == *root_hash,
        "root hash mismatch: data gives {}, expected {}",
        hex::encode(info.root_hash),
        hex::encode(root_hash)
    );
    let start = u64::from(p.hash_block_size);
    ensure!(
        hash.len >= start + tree.len() as u64,
        "hash device is truncated"
    );
    let mut stored = vec![0u8; tree.len()];
    hash.file
        .read_exact_at(&mut stored, hash.offset + start)
        .context("reading the stored hash tree")?;
    if let Some(i) = stored.iter().zip(&tree).position(|(a, b)| a != b) {
        bail!(
            "stored hash tree differs from the data at hash-device byte {}",
            start + i as u64
        );
    }
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
        data.len > 0 && data.len % dbs as u64 == 0,
        "data device size {} is not a positive multiple of the {dbs}-byte verity block",
        data.len
    );
    ensure!(p.salt.len() <= 256, "verity salt longer than 256 bytes");
    let data_blocks = data.len / dbs as u64;
    let mut salted = Sha256::new();
    salted.update(&p.salt);
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
        cur = level
            .par_chunks(hbs)
            .flat_map_iter(|b| salted.clone().chain_update(b).finalize())
            .collect();
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
fn hash_leaves(data: Region<'_>, dbs: usize, salted: &Sha256) -> Result<Vec<u8>> {
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
            let hash = |bytes: &[u8], dst: &mut [u8]| {
                for (block, d) in bytes.chunks(dbs).zip(dst.chunks_mut(DIGEST)) {
                    d.copy_from_slice(&salted.clone().chain_update(block).finalize());
                }
            };
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

    #[test]
    fn verify_accepts_own_output_and_names_a_flipped_byte() {
        let data: Vec<u8> = (0..300 * 4096u32).map(|i| (i % 251) as u8).collect();
        let mut df = tempfile::tempfile().unwrap();
        df.write_all(&data).unwrap();
        let (info, hash) = run(&data);
        let mut hf = tempfile::tempfile().unwrap();
        hf.write_all(&hash).unwrap();
        let d = Region {
            file: &df,
            offset: 0,
            len: data.len() as u64,
        };
        let h = Region {
            file: &hf,
            offset: 0,
            len: hash.len() as u64,
        };
        verify(d, h, &info.root_hash).unwrap();
        df.write_all_at(&[1], 5000).unwrap();
        let e = verify(d, h, &info.root_hash).unwrap_err().to_string();
        assert!(e.contains("root hash mismatch"), "{e}");
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
