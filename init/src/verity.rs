//! dm-verity superblock parsing and table construction (spec §11.1–§11.3).

use crate::gpt::{le32, le64};
use std::fmt;

use crate::cmdline::RootHash;
use crate::devnum::DevNum;
use crate::dm::Target;

/// Size of the on-disk superblock.
pub const SUPERBLOCK_SIZE: usize = 512;

/// Largest block size the kernel accepts on x86-64 (`PAGE_SIZE`).
const MAX_BLOCK_SIZE: u32 = 4096;

/// SHA-256 digest length.
const DIGEST_SIZE: u64 = 32;

/// The validated fields of a verity superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Data block size in bytes.
    pub data_block_size: u32,
    /// Hash block size in bytes.
    pub hash_block_size: u32,
    /// Number of data blocks covered.
    pub data_blocks: u64,
    /// Salt (≤ 256 bytes).
    pub salt: Vec<u8>,
}

/// Why a superblock was rejected or does not fit its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityError(pub String);

impl fmt::Display for VerityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerityError {}

fn err<T>(msg: String) -> Result<T, VerityError> {
    Err(VerityError(msg))
}

/// Parses and validates the 512-byte superblock at offset 0 of the hash device.
pub fn parse_superblock(bytes: &[u8]) -> Result<Superblock, VerityError> {
    let Some(sb) = bytes.get(..SUPERBLOCK_SIZE) else {
        return err(format!(
            "superblock: need {SUPERBLOCK_SIZE} bytes, have {}",
            bytes.len()
        ));
    };
    if &sb[0..8] != b"verity\0\0" {
        return err("no `verity` signature at offset 0".into());
    }
    expect_u32(sb, 8, "version", 1)?;
    expect_u32(sb, 12, "hash_type", 1)?;
    let algorithm = &sb[32..64];
    let name_len = algorithm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(algorithm.len());
    if &algorithm[..name_len] != b"sha256" || algorithm[name_len..].iter().any(|&b| b != 0) {
        let shown = String::from_utf8_lossy(&algorithm[..name_len]);
        return err(format!(
            "hash algorithm {shown:?} at offset 32: expected \"sha256\""
        ));
    }
    let data_block_size = block_size(sb, 64, "data_block_size")?;
    let hash_block_size = block_size(sb, 68, "hash_block_size")?;
    let data_blocks = le64(sb, 72);
    if data_blocks == 0 {
        return err("data_blocks at offset 72 is 0".into());
    }
    let salt_size = usize::from(u16::from_le_bytes([sb[80], sb[81]]));
    if salt_size > 256 {
        return err(format!("salt_size {salt_size} at offset 80 exceeds 256"));
    }
    Ok(Superblock {
        data_block_size,
        hash_block_size,
        data_blocks,
        salt: sb[88..88 + salt_size].to_vec(),
    })
}

fn expect_u32(sb: &[u8], off: usize, name: &str, want: u32) -> Result<(), VerityError> {
    let got = le32(sb, off);
    if got != want {
        return err(format!("{name} {got} at offset {off}: expected {want}"));
    }
    Ok(())
}

fn block_size(sb: &[u8], off: usize, name: &str) -> Result<u32, VerityError> {
    let n = le32(sb, off);
    if !n.is_power_of_two() || !(512..=MAX_BLOCK_SIZE).contains(&n) {
        return err(format!(
            "{name} {n} at offset {off}: expected a power of two in 512..={MAX_BLOCK_SIZE}"
        ));
    }
    Ok(n)
}

impl Superblock {
    /// Bytes of data the tree covers.
    pub fn data_bytes(&self) -> Option<u64> {
        self.data_blocks
            .checked_mul(u64::from(self.data_block_size))
    }

    /// Bytes the hash device needs: superblock block plus every tree level (spec §11.2).
    pub fn hash_device_bytes(&self) -> Option<u64> {
        let hbs = u64::from(self.hash_block_size);
        // A hash block holds 2^shift digests; fewer than two per block would never converge.
        let shift = (hbs / DIGEST_SIZE).checked_ilog2().filter(|&s| s > 0)?;
        let last = self.data_blocks.saturating_sub(1);
        let mut blocks = 1u64; // the superblock, zero-padded to one hash block
        let mut level = 0u32;
        // Level `level` exists while the highest data block index does not fit below it.
        while level * shift < 64 && last >> (level * shift) != 0 {
            let per_block = 1u64.checked_shl((level + 1) * shift).unwrap_or(u64::MAX);
            blocks = blocks.checked_add(self.data_blocks.div_ceil(per_block))?;
            level += 1;
        }
        blocks.checked_mul(hbs)
    }

    /// Checks that the data and hash devices are large enough for this superblock.
    pub fn check_fits(&self, data_dev_bytes: u64, hash_dev_bytes: u64) -> Result<(), VerityError> {
        let need = self.data_bytes().ok_or_else(|| {
            VerityError(format!(
                "data_blocks {} overflows a 64-bit size",
                self.data_blocks
            ))
        })?;
        if need > data_dev_bytes {
            return err(format!(
                "superblock covers {} blocks of {} bytes ({need} bytes) but the data partition has {data_dev_bytes} bytes",
                self.data_blocks, self.data_block_size
            ));
        }
        let hash_need = self
            .hash_device_bytes()
            .ok_or_else(|| VerityError("hash tree size overflows".into()))?;
        if hash_need > hash_dev_bytes {
            return err(format!(
                "hash tree needs {hash_need} bytes but the verity partition has {hash_dev_bytes} bytes"
            ));
        }
        Ok(())
    }
}

/// Offset of the erofs superblock in the image, and its magic.
pub const EROFS_SB_OFFSET: u64 = 1024;
const EROFS_MAGIC: u32 = 0xE0F5_E1E2;

/// The size of an erofs image from its superblock (`blocks << blkszbits`; `sb` starts at the
/// superblock, [`EROFS_SB_OFFSET`] into the image).
pub fn erofs_image_bytes(sb: &[u8]) -> Result<u64, VerityError> {
    if sb.len() < 40 {
        return err(format!("erofs superblock is {} bytes, need 40", sb.len()));
    }
    let magic = u32::from_le_bytes(sb[0..4].try_into().expect("4 bytes"));
    if magic != EROFS_MAGIC {
        return err(format!("no erofs superblock (magic {magic:#010x})"));
    }
    let blkszbits = u32::from(sb[12]);
    if !(9..=16).contains(&blkszbits) {
        return err(format!("erofs block size 2^{blkszbits} is out of range"));
    }
    let blocks = u64::from(u32::from_le_bytes(sb[36..40].try_into().expect("4 bytes")));
    Ok(blocks << blkszbits)
}

impl Superblock {
    /// Refuses a tree that does not cover the whole erofs image: reads past its end would
    /// return unverified-area errors (EIO) at run time instead of failing the boot now.
    pub fn check_covers(&self, erofs_bytes: u64) -> Result<(), VerityError> {
        let covered = self.data_bytes().unwrap_or(u64::MAX);
        if covered < erofs_bytes {
            return err(format!(
                "the verity tree covers {covered} bytes ({} blocks of {}) but the erofs root is {erofs_bytes} bytes: its end would be unverified",
                self.data_blocks, self.data_block_size
            ));
        }
        Ok(())
    }
}

/// Builds the single `verity` target covering the whole data area (spec §11.3).
pub fn table(
    sb: &Superblock,
    data: DevNum,
    hash: DevNum,
    roothash: &RootHash,
) -> Result<Target, VerityError> {
    let bytes = sb
        .data_bytes()
        .ok_or_else(|| VerityError("data size overflows".into()))?;
    let salt = if sb.salt.is_empty() {
        "-".to_string()
    } else {
        crate::hex::encode(&sb.salt)
    };
    let params = format!(
        "1 {data} {hash} {} {} {} 1 sha256 {} {salt}",
        sb.data_block_size,
        sb.hash_block_size,
        sb.data_blocks,
        roothash.to_hex()
    );
    Ok(Target {
        start: 0,
        length: bytes / 512,
        target_type: "verity".into(),
        params,
    })
}

#[cfg(test)]
#[path = "verity_tests.rs"]
mod tests;
