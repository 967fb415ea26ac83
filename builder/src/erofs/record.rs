//! Emits one inode: its metadata record (inode, xattrs, inline tail) and its data blocks.

use std::io::{Seek, Write};

use anyhow::{ensure, Context, Result};

use super::dir::{self, Dirent};
use super::emit::{expect_eof, read_full, Emitter, COPY_CHUNK};
use super::format::{encode_dev, FileType, InodeExtended, Layout, BLOCK_SIZE};
use super::layout::{InodePlan, Plan};
use super::xattr;
use crate::rootfs::{Entry, Kind, Tree};

/// Writes inode `idx` of `plan`; `scratch` is a reusable copy buffer.
pub fn write_inode<W: Write + Seek>(
    tree: &Tree,
    plan: &Plan,
    idx: usize,
    em: &mut Emitter<'_, W>,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let ino = &plan.inodes[idx];
    let e = &tree.entries[ino.entry];
    if ino.data_blocks > 0 {
        let at = u64::from(ino.blkaddr) * BLOCK_SIZE;
        ensure!(
            em.data_pos() == at,
            "data block {} planned, writer at {}",
            ino.blkaddr,
            em.data_pos()
        );
    }
    let mut rec = Vec::with_capacity(ino.record_len() as usize);
    rec.extend_from_slice(&header(ino, e, idx)?.encode());
    xattr::encode_ibody(&e.xattrs, &mut rec)?;
    match &e.kind {
        Kind::File { size, data } => {
            scratch.resize(COPY_CHUNK, 0);
            let mut src = tree.store.open(*data).context("opening file content")?;
            let in_blocks = *size - ino.inline_len();
            em.copy_data(&mut src, in_blocks, scratch)?;
            let tail = &mut scratch[..ino.inline_len() as usize];
            read_full(&mut src, tail, in_blocks, *size)?;
            rec.extend_from_slice(tail);
            expect_eof(&mut src, *size)?;
        }
        Kind::Symlink { target } => split_data(ino, target, &mut rec, em)?,
        Kind::Dir => split_data(ino, &dir_data(tree, plan, ino.entry), &mut rec, em)?,
        _ => {}
    }
    if ino.layout == Layout::FlatPlain {
        em.pad_data_block()?;
    }
    ensure!(
        rec.len() as u64 == ino.record_len(),
        "inode record length mismatch"
    );
    em.meta_at(ino.offset(), &rec)
}

/// The 64-byte inode for `ino` (owned by entry `e`); `idx` becomes the 32-bit `i_ino`.
fn header(ino: &InodePlan, e: &Entry, idx: usize) -> Result<InodeExtended> {
    let i_u = match e.kind {
        Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
            encode_dev(major, minor)
        }
        Kind::Fifo | Kind::Socket => 0,
        _ => ino.blkaddr,
    };
    Ok(InodeExtended {
        layout: ino.layout,
        xattr_icount: super::format::xattr_icount(ino.xattr_size).context("too many xattrs")?,
        mode: u16::try_from(e.mode()).context("mode does not fit 16 bits")?,
        size: ino.size,
        i_u,
        ino: u32::try_from(idx).context("more than 2^32 inodes")?,
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime,
        nlink: ino.nlink,
    })
}

/// Sends the block part of in-memory data to the data area and the inline tail to `rec`.
fn split_data<W: Write + Seek>(
    ino: &InodePlan,
    data: &[u8],
    rec: &mut Vec<u8>,
    em: &mut Emitter<'_, W>,
) -> Result<()> {
    ensure!(
        data.len() as u64 == ino.size,
        "data length {} != planned size {}",
        data.len(),
        ino.size
    );
    let (blocks, tail) = data.split_at((ino.size - ino.inline_len()) as usize);
    em.data(blocks)?;
    rec.extend_from_slice(tail);
    Ok(())
}

/// The directory data of entry `d`: `.`, `..` and its children, sorted, in blocks.
fn dir_data(tree: &Tree, plan: &Plan, d: usize) -> Vec<u8> {
    let entries = &tree.entries;
    let mut dirents: Vec<Dirent> = plan.children[d]
        .iter()
        .map(|&c| Dirent {
            name: entries[c as usize].name().as_bytes(),
            nid: plan.inode_of(c as usize).nid,
            ft: file_type(&entries[c as usize].kind),
        })
        .collect();
    let this = plan.inode_of(d).nid;
    let up = plan.inode_of(plan.parent[d] as usize).nid;
    dirents.push(Dirent {
        name: b".",
        nid: this,
        ft: FileType::Dir,
    });
    dirents.push(Dirent {
        name: b"..",
        nid: up,
        ft: FileType::Dir,
    });
    dir::sort(&mut dirents);
    dir::encode(&dirents)
}

fn file_type(kind: &Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Dir,
        Kind::File { .. } | Kind::Hardlink { .. } => FileType::Regular,
        Kind::Symlink { .. } => FileType::Symlink,
        Kind::CharDev { .. } => FileType::CharDev,
        Kind::BlockDev { .. } => FileType::BlockDev,
        Kind::Fifo => FileType::Fifo,
        Kind::Socket => FileType::Socket,
    }
}
