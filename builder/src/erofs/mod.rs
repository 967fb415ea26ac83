//! Deterministic, rootless EROFS image writer: normalized [`Tree`] in, uncompressed EROFS
//! image out, readable by the Linux 6.1 kernel and erofs-utils 1.5.
//!
//! Format choices (see [`layout`] for the byte map):
//! - 4 KiB blocks, superblock at 1024 with no feature bits (no checksum, no compression,
//!   no shared xattrs, `meta_blkaddr = 0`), root directory first at nid 36.
//! - Every inode is the 64-byte extended form (64-bit size and mtime, 32-bit uid/gid/nlink).
//! - `FLAT_INLINE` when the data tail fits right after the inode and its xattrs in the same
//!   block, else `FLAT_PLAIN` with the tail in a zero-padded block of its own.
//! - Inline xattrs only, in the tree's (name-sorted) order.
//!
//! File contents are streamed from the tree's content store in tree order; memory holds only
//! metadata, one directory's entries and a copy buffer.

mod dir;
mod emit;
mod format;
mod layout;
pub mod read;
mod record;
mod xattr;

#[cfg(test)]
mod tests;

use std::io::{Seek, Write};

use anyhow::{ensure, Context, Result};

use crate::rootfs::Tree;
use format::{SuperBlock, SUPER_OFFSET};

/// The image's block size; [`Summary::size`] is a multiple of it.
pub use format::BLOCK_SIZE;

/// Image-wide settings that are not in the tree.
#[derive(Debug, Clone)]
pub struct Options {
    /// Filesystem UUID stored in the superblock.
    pub uuid: [u8; 16],
    /// Seconds since the epoch stored as the superblock build time.
    pub build_time: u64,
    /// Volume label, at most 16 bytes, no NUL.
    pub volume_name: String,
}

/// What [`write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Bytes written, a multiple of 4096.
    pub size: u64,
    /// Inodes in the image (hardlinks share one).
    pub inodes: u64,
    /// 4 KiB blocks in the image (`size / 4096`).
    pub blocks: u64,
}

/// Writes `tree` as an EROFS image to `out`, starting at its current position; on success the
/// sink is positioned right after the image. The same tree and options give the same bytes.
pub fn write<W: Write + Seek>(tree: &Tree, out: &mut W, opts: &Options) -> Result<Summary> {
    let volume_name = volume_name(&opts.volume_name)?;
    let plan = layout::plan(tree).context("laying out the erofs image")?;
    let mut em = emit::Emitter::new(out, plan.data_start)?;
    let sb = SuperBlock {
        root_nid: u16::try_from(plan.inodes[0].nid).context("root nid does not fit 16 bits")?,
        inos: plan.inodes.len() as u64,
        build_time: opts.build_time,
        blocks: u32::try_from(plan.blocks).context("image exceeds 2^32 blocks")?,
        uuid: opts.uuid,
        volume_name,
    };
    em.meta_at(SUPER_OFFSET, &sb.encode())
        .context("writing the erofs superblock")?;
    let mut scratch = Vec::new();
    for idx in 0..plan.inodes.len() {
        let path = &tree.entries[plan.inodes[idx].entry].path;
        record::write_inode(tree, &plan, idx, &mut em, &mut scratch)
            .with_context(|| format!("writing erofs inode for {}", layout::display(path)))?;
    }
    em.finish(plan.data_start, plan.blocks)?;
    let summary = Summary {
        size: plan.blocks * BLOCK_SIZE,
        inodes: plan.inodes.len() as u64,
        blocks: plan.blocks,
    };
    tracing::debug!(
        size = summary.size,
        inodes = summary.inodes,
        meta_blocks = plan.data_start,
        "wrote erofs image"
    );
    Ok(summary)
}

fn volume_name(name: &str) -> Result<[u8; 16]> {
    let bytes = name.as_bytes();
    ensure!(
        bytes.len() <= 16 && !bytes.contains(&0),
        "erofs volume name {name:?} must be at most 16 bytes without NUL"
    );
    let mut out = [0u8; 16];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}
