//! A bounds-checked EROFS reader for uncompressed images: what [`super::write`] emits and what
//! `mkfs.erofs` writes without compression — compact and extended inodes, `FLAT_PLAIN` and
//! `FLAT_INLINE` data, inline and shared xattrs, any block size from 512 B to 64 KiB.
//!
//! Every offset and length read from the image is checked before use; anything malformed or
//! unsupported (compression, chunked files, extra devices, long xattr prefixes) is an error
//! naming the nid or offset, never a panic. Images are read through [`ReadAt`], so a root
//! partition is read in place inside a disk image; only metadata is held in memory.

mod dir;
mod xattr;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use anyhow::{bail, ensure, Context, Result};

use crate::rootfs::Xattr;
pub use dir::{Dirent, Node};

/// Positioned reads from an image.
pub trait ReadAt: Send + Sync {
    /// Bytes available.
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`; callers stay within [`ReadAt::size`].
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|o| self.get(o..o.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

/// A window of a file (e.g. the root partition of a disk image).
#[derive(Debug)]
pub struct FileRegion {
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

impl ReadAt for FileRegion {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the region",
            ));
        }
        self.file.read_exact_at(buf, self.offset + offset)
    }
}

const SB_OFFSET: u64 = 1024;
const SB_SIZE: usize = 128;
const MAGIC: u32 = 0xE0F5_E1E2;
/// `EROFS_FEATURE_INCOMPAT_ZERO_PADDING`: only affects compressed data, harmless here.
const INCOMPAT_OK: u32 = 0x1;
/// Largest directory or symlink data read into memory at once.
const MAX_META_DATA: u64 = 256 << 20;

/// The superblock fields a reader needs, and the identity fields `nodeimg diff` compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub block_size: u64,
    pub root_nid: u64,
    pub inos: u64,
    pub build_time: u64,
    pub build_time_nsec: u32,
    pub blocks: u32,
    pub meta_blkaddr: u32,
    pub xattr_blkaddr: u32,
    pub uuid: [u8; 16],
    pub volume_name: Vec<u8>,
    pub feature_compat: u32,
    pub feature_incompat: u32,
}

/// `FLAT_PLAIN` (0) or `FLAT_INLINE` (2): the only layouts read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLayout {
    FlatPlain,
    FlatInline,
}

/// What an inode is, from its mode (and `i_u` for devices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InodeKind {
    Dir,
    File,
    Symlink,
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
    Fifo,
    Socket,
}

/// One decoded inode; its data location is validated against the image bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub nid: u64,
    /// The 64-byte extended form (else the 32-byte compact one).
    pub extended: bool,
    pub layout: DataLayout,
    pub kind: InodeKind,
    /// Full `st_mode`.
    pub mode: u16,
    pub nlink: u32,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub mtime_nsec: u32,
    pub ino: u32,
    /// Inline and shared xattrs with full names, in on-disk order.
    pub xattrs: Vec<Xattr>,
    /// Byte offset of the block-aligned data part and its length.
    blocks_at: u64,
    blocks_len: u64,
    /// Byte offset of the inline tail and its length.
    tail_at: u64,
    tail_len: u64,
}

/// An opened image.
#[derive(Debug)]
pub struct Image<S> {
    src: S,
    sb: Superblock,
    /// End of the filesystem (`blocks × block size`), within the source.
    end: u64,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

impl<S: ReadAt> Image<S> {
    /// Reads and checks the superblock.
    pub fn open(src: S) -> Result<Self> {
        ensure!(
            src.size() >= SB_OFFSET + SB_SIZE as u64,
            "{} bytes is too small for an erofs image (superblock at 1024..1152)",
            src.size()
        );
        let mut b = [0u8; SB_SIZE];
        src.read_exact_at(&mut b, SB_OFFSET)
            .context("reading the erofs superblock")?;
        let sb = parse_superblock(&b)?;
        let end = u64::from(sb.blocks) * sb.block_size;
        ensure!(
            end <= src.size(),
            "erofs superblock says {} blocks of {} bytes ({end} bytes) but the image holds {}",
            sb.blocks,
            sb.block_size,
            src.size()
        );
        let img = Image { src, sb, end };
        let root = img
            .inode(img.sb.root_nid)
            .context("reading the root inode")?;
        ensure!(
            root.kind == InodeKind::Dir,
            "root nid {} is not a directory (mode {:o})",
            root.nid,
            root.mode
        );
        Ok(img)
    }

    /// The superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Reads `len` bytes at image offset `at`, which must lie inside the filesystem.
    fn bytes(&self, at: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let stop = at.checked_add(len);
        ensure!(
            stop.is_some_and(|s| s <= self.end),
            "{what}: {len} bytes at offset {at} run past the end of the image ({} bytes)",
            self.end
        );
        let mut buf = vec![0u8; usize::try_from(len).context("length overflows")?];
        self.src
            .read_exact_at(&mut buf, at)
            .with_context(|| format!("{what}: reading {len} bytes at offset {at}"))?;
        Ok(buf)
    }

    /// Decodes inode `nid` and validates where its data lies.
    pub fn inode(&self, nid: u64) -> Result<Inode> {
        let bs = self.sb.block_size;
        let at = u64::from(self.sb.meta_blkaddr)
            .checked_mul(bs)
            .and_then(|m| m.checked_add(nid.checked_mul(32)?))
            .with_context(|| format!("nid {nid}: inode offset overflows"))?;
        let what = format!("nid {nid}");
        let head = self.bytes(at, 32, &what)?;
        let format = le16(&head, 0);
        ensure!(
            format & !0xf == 0,
            "nid {nid}: i_format {format:#x} has unknown bits"
        );
        let extended = format & 1 == 1;
        let raw = if extended {
            self.bytes(at, 64, &what)?
        } else {
            head
        };
        let mut ino = self.decode(nid, format, &raw)?;
        let isize = raw.len() as u64;
        let icount = u64::from(le16(&raw, 2));
        let xsize = if icount == 0 {
            0
        } else {
            12 + (icount - 1) * 4
        };
        if xsize > 0 {
            let body = self.bytes(at + isize, xsize, &format!("nid {nid} xattr area"))?;
            ino.xattrs = xattr::parse(self, &body).with_context(|| format!("nid {nid}: xattrs"))?;
        }
        self.place_data(&mut ino, at + isize + xsize)
            .with_context(|| format!("nid {nid}"))?;
        Ok(ino)
    }

    fn decode(&self, nid: u64, format: u16, b: &[u8]) -> Result<Inode> {
        let layout = match (format >> 1) & 0x7 {
            0 => DataLayout::FlatPlain,
            2 => DataLayout::FlatInline,
            1 | 3 => bail!("nid {nid}: compressed inodes are not supported"),
            4 => bail!("nid {nid}: chunk-based inodes are not supported"),
            l => bail!("nid {nid}: unknown data layout {l}"),
        };
        let mode = le16(b, 4);
        let i_u = le32(b, 16);
        let kind = kind_of(mode, i_u).with_context(|| format!("nid {nid}"))?;
        let extended = b.len() == 64;
        let (nlink, size, uid, gid, mtime, mtime_nsec) = if extended {
            let t = (le64(b, 32), le32(b, 40));
            (le32(b, 44), le64(b, 8), le32(b, 24), le32(b, 28), t.0, t.1)
        } else {
            let t = (self.sb.build_time, self.sb.build_time_nsec);
            let (u, g) = (u32::from(le16(b, 24)), u32::from(le16(b, 26)));
            (u32::from(le16(b, 6)), u64::from(le32(b, 8)), u, g, t.0, t.1)
        };
        Ok(Inode {
            nid,
            extended,
            layout,
            kind,
            mode,
            nlink,
            size,
            uid,
            gid,
            mtime,
            mtime_nsec,
            ino: le32(b, 20),
            xattrs: Vec::new(),
            blocks_at: u64::from(i_u),
            blocks_len: 0,
            tail_at: 0,
            tail_len: 0,
        })
    }

    /// Splits the data into its block part and inline tail (as the kernel's
    /// `erofs_map_blocks_flat` does) and checks both lie inside the image.
    fn place_data(&self, ino: &mut Inode, tail_at: u64) -> Result<()> {
        let bs = self.sb.block_size;
        let has_data = matches!(
            ino.kind,
            InodeKind::Dir | InodeKind::File | InodeKind::Symlink
        );
        if !has_data {
            ensure!(ino.size == 0, "special file with size {}", ino.size);
            ino.blocks_at = 0;
            return Ok(());
        }
        let nblocks = ino.size.div_ceil(bs);
        let (blocks_len, tail_len) = match ino.layout {
            DataLayout::FlatPlain => (ino.size, 0),
            DataLayout::FlatInline if nblocks == 0 => (0, 0),
            DataLayout::FlatInline => ((nblocks - 1) * bs, ino.size - (nblocks - 1) * bs),
        };
        if blocks_len > 0 {
            let at = ino
                .blocks_at
                .checked_mul(bs)
                .context("block address overflows")?;
            ensure!(
                at.checked_add(blocks_len).is_some_and(|e| e <= self.end),
                "data blocks {}.. ({blocks_len} bytes) run past the end of the image",
                ino.blocks_at
            );
            ino.blocks_at = at;
        } else {
            ino.blocks_at = 0;
        }
        if tail_len > 0 {
            ensure!(
                tail_at % bs + tail_len <= bs,
                "inline tail of {tail_len} bytes at offset {tail_at} crosses a block boundary"
            );
            ensure!(
                tail_at + tail_len <= self.end,
                "inline tail at offset {tail_at} runs past the end of the image"
            );
        }
        (ino.blocks_len, ino.tail_at, ino.tail_len) = (blocks_len, tail_at, tail_len);
        Ok(())
    }

    /// Reads up to `buf.len()` bytes of `ino`'s data at `offset`; returns 0 at the end.
    pub fn read_at(&self, ino: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= ino.size || buf.is_empty() {
            return Ok(0);
        }
        let (at, avail) = if offset < ino.blocks_len {
            (ino.blocks_at + offset, ino.blocks_len - offset)
        } else {
            let o = offset - ino.blocks_len;
            (ino.tail_at + o, ino.tail_len - o)
        };
        let n = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
        self.src
            .read_exact_at(&mut buf[..n], at)
            .with_context(|| format!("nid {}: reading data at offset {at}", ino.nid))?;
        Ok(n)
    }

    /// A streaming reader over `ino`'s data.
    pub fn reader<'a>(&'a self, ino: &'a Inode) -> DataReader<'a, S> {
        DataReader {
            img: self,
            ino,
            pos: 0,
        }
    }

    /// The whole data of a directory or symlink (at most 256 MiB).
    pub fn read_small(&self, ino: &Inode) -> Result<Vec<u8>> {
        ensure!(
            ino.size <= MAX_META_DATA,
            "nid {}: {} bytes of directory or symlink data is more than the {MAX_META_DATA} read at once",
            ino.nid,
            ino.size
        );
        let mut out = vec![0u8; ino.size as usize];
        let mut done = 0;
        while done < out.len() {
            let n = self.read_at(ino, done as u64, &mut out[done..])?;
            ensure!(n > 0, "nid {}: data ended early", ino.nid);
            done += n;
        }
        Ok(out)
    }

    /// The target of a symlink inode.
    pub fn symlink_target(&self, ino: &Inode) -> Result<Vec<u8>> {
        ensure!(
            ino.kind == InodeKind::Symlink,
            "nid {} is not a symlink",
            ino.nid
        );
        ensure!(
            (1..4096).contains(&ino.size),
            "nid {}: symlink target of {} bytes (expected 1..=4095)",
            ino.nid,
            ino.size
        );
        self.read_small(ino)
    }
}

/// Reads an inode's data sequentially (see [`Image::reader`]).
#[derive(Debug)]
pub struct DataReader<'a, S> {
    img: &'a Image<S>,
    ino: &'a Inode,
    pos: u64,
}

impl<S: ReadAt> Read for DataReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .img
            .read_at(self.ino, self.pos, buf)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn parse_superblock(b: &[u8; SB_SIZE]) -> Result<Superblock> {
    let magic = le32(b, 0);
    ensure!(
        magic == MAGIC,
        "no erofs superblock: magic at offset 1024 is {magic:#010x}, expected {MAGIC:#010x}"
    );
    let bits = b[12];
    ensure!(
        (9..=16).contains(&bits),
        "erofs block size 2^{bits} is outside 512 B ..= 64 KiB"
    );
    let incompat = le32(b, 80);
    ensure!(
        incompat & !INCOMPAT_OK == 0,
        "erofs incompatible features {:#x} are not supported (compression, chunks, devices, …)",
        incompat & !INCOMPAT_OK
    );
    ensure!(le16(b, 86) == 0, "erofs extra devices are not supported");
    let name = &b[64..80];
    let name_len = name.iter().position(|&c| c == 0).unwrap_or(16);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&b[48..64]);
    Ok(Superblock {
        block_size: 1u64 << bits,
        root_nid: u64::from(le16(b, 14)),
        inos: le64(b, 16),
        build_time: le64(b, 24),
        build_time_nsec: le32(b, 32),
        blocks: le32(b, 36),
        meta_blkaddr: le32(b, 40),
        xattr_blkaddr: le32(b, 44),
        uuid,
        volume_name: name[..name_len].to_vec(),
        feature_compat: le32(b, 8),
        feature_incompat: incompat,
    })
}

/// The kind from `i_mode`'s type bits; devices decode `i_u` like `new_decode_dev()`.
fn kind_of(mode: u16, i_u: u32) -> Result<InodeKind> {
    let dev = || ((i_u & 0xfff00) >> 8, (i_u & 0xff) | ((i_u >> 12) & 0xfff00));
    Ok(match u32::from(mode) & 0o170000 {
        0o040000 => InodeKind::Dir,
        0o100000 => InodeKind::File,
        0o120000 => InodeKind::Symlink,
        0o020000 => {
            let (major, minor) = dev();
            InodeKind::CharDev { major, minor }
        }
        0o060000 => {
            let (major, minor) = dev();
            InodeKind::BlockDev { major, minor }
        }
        0o010000 => InodeKind::Fifo,
        0o140000 => InodeKind::Socket,
        t => bail!("unknown file type {t:o} in mode {mode:o}"),
    })
}

/// What [`Image::scan`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSummary {
    /// Paths in the tree (root included).
    pub paths: u64,
    /// Distinct inodes.
    pub inodes: u64,
    /// Bytes of file data read.
    pub data_bytes: u64,
}

impl<S: ReadAt> Image<S> {
    /// Walks the whole tree and reads every inode's data once (file contents, symlink
    /// targets): a full consistency read, as a fuzz target or a check needs.
    pub fn scan(&self) -> Result<ScanSummary> {
        let nodes = self.walk()?;
        let mut seen = std::collections::HashSet::new();
        let mut data_bytes = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        for n in &nodes {
            if !seen.insert(n.inode.nid) {
                continue;
            }
            match n.inode.kind {
                InodeKind::File => {
                    let mut r = self.reader(&n.inode);
                    loop {
                        let k = r
                            .read(&mut buf)
                            .with_context(|| format!("reading /{}", n.path))?;
                        if k == 0 {
                            break;
                        }
                        data_bytes += k as u64;
                    }
                }
                InodeKind::Symlink => {
                    self.symlink_target(&n.inode)
                        .with_context(|| format!("/{}", n.path))?;
                }
                _ => {}
            }
        }
        Ok(ScanSummary {
            paths: nodes.len() as u64,
            inodes: seen.len() as u64,
            data_bytes,
        })
    }
}
