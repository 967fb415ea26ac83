//! The layout pass: from the tree's metadata alone, decide every inode's number (nid), data
//! layout and block address before a single byte is written.
//!
//! Image map: block 0 holds the superblock at 1024; the metadata area follows it directly
//! (first inode at byte 1152, nid 36) and packs, in tree order, one record per inode: the
//! 64-byte extended inode, its inline xattrs and, for `FLAT_INLINE`, the data tail. A record
//! never straddles a block boundary (it moves to the next block instead), except a record
//! larger than a block (huge xattrs), which starts on a block boundary and has no inline tail.
//! The data area starts at the first block after the metadata and holds, in tree order, each
//! inode's full data blocks (plus a zero-padded tail block when the tail was not inlined).

use anyhow::{bail, ensure, Context, Result};

use super::dir;
use super::format::{
    Layout, BLOCK_SIZE, INODE_SIZE, NAME_MAX, NULL_ADDR, SLOT_SIZE, SUPER_OFFSET, SUPER_SIZE,
};
use super::xattr;
use crate::rootfs::{path_cmp, Entry, Kind, Tree};

/// Where one inode and its data go.
#[derive(Debug, Clone)]
pub struct InodePlan {
    /// Index of the entry that owns the inode (the first name of a hardlinked file).
    pub entry: usize,
    pub nlink: u32,
    /// `i_size`: file length, symlink target length or directory data length.
    pub size: u64,
    /// Bytes of inline xattrs (0 when none).
    pub xattr_size: u64,
    pub layout: Layout,
    pub nid: u64,
    /// First block in the data area, or [`NULL_ADDR`] without data blocks.
    pub blkaddr: u32,
    /// Blocks this inode owns in the data area.
    pub data_blocks: u64,
}

impl InodePlan {
    /// Byte offset of the inode in the image.
    pub fn offset(&self) -> u64 {
        self.nid * SLOT_SIZE
    }

    /// Bytes of data stored inline after the xattrs.
    pub fn inline_len(&self) -> u64 {
        match self.layout {
            Layout::FlatInline => self.size % BLOCK_SIZE,
            Layout::FlatPlain => 0,
        }
    }

    /// Length of the metadata record (inode + xattrs + inline tail).
    pub fn record_len(&self) -> u64 {
        INODE_SIZE + self.xattr_size + self.inline_len()
    }
}

/// The complete layout of an image.
#[derive(Debug)]
pub struct Plan {
    pub inodes: Vec<InodePlan>,
    /// Entry index → inode index (hardlinks share their target's inode).
    pub entry_inode: Vec<u32>,
    /// Entry index → parent entry index (the root is its own parent).
    pub parent: Vec<u32>,
    /// Entry index → child entry indices (empty for non-directories).
    pub children: Vec<Vec<u32>>,
    /// First block of the data area (= blocks of metadata, superblock included).
    pub data_start: u64,
    /// Total blocks of the image.
    pub blocks: u64,
}

impl Plan {
    /// The inode an entry resolves to.
    pub fn inode_of(&self, entry: usize) -> &InodePlan {
        &self.inodes[self.entry_inode[entry] as usize]
    }
}

/// `/`-rooted path for messages.
pub fn display(path: &str) -> String {
    format!("/{path}")
}

/// Computes the layout of `tree`, validating everything the format cannot hold.
pub fn plan(tree: &Tree) -> Result<Plan> {
    let entries = &tree.entries;
    let (parent, children) = link_parents(entries)?;
    let (mut inodes, entry_inode) = assign_inodes(entries)?;
    for ino in &mut inodes {
        let e = &entries[ino.entry];
        size_inode(ino, e, &children[ino.entry], entries)
            .with_context(|| format!("laying out erofs inode for {}", display(&e.path)))?;
    }
    let meta_end = place_records(&mut inodes);
    let data_start = meta_end.div_ceil(BLOCK_SIZE);
    let blocks = assign_blocks(&mut inodes, data_start)?;
    let root_nid = inodes[0].nid;
    ensure!(
        root_nid <= u64::from(u16::MAX),
        "root nid {root_nid} does not fit 16 bits"
    );
    Ok(Plan {
        inodes,
        entry_inode,
        parent,
        children,
        data_start,
        blocks,
    })
}

/// Finds every entry's parent (entries are in depth-first order) and each directory's children.
fn link_parents(entries: &[Entry]) -> Result<(Vec<u32>, Vec<Vec<u32>>)> {
    let Some(root) = entries.first() else {
        bail!("the tree has no root directory")
    };
    ensure!(
        root.path.is_empty() && root.kind == Kind::Dir,
        "the first tree entry must be the root directory, found {}",
        display(&root.path)
    );
    ensure!(
        entries.len() <= u32::MAX as usize,
        "too many entries: {}",
        entries.len()
    );
    let mut parent = vec![0u32; entries.len()];
    let mut children = vec![Vec::new(); entries.len()];
    let mut stack: Vec<usize> = vec![0];
    for (i, e) in entries.iter().enumerate().skip(1) {
        let want = e.parent().unwrap_or("");
        while stack.last().is_some_and(|&d| entries[d].path != want) {
            stack.pop();
        }
        let Some(&p) = stack.last() else {
            bail!(
                "{}: parent directory is not before it in the tree",
                display(&e.path)
            );
        };
        parent[i] = p as u32;
        children[p].push(i as u32);
        if e.kind == Kind::Dir {
            stack.push(i);
        }
    }
    Ok((parent, children))
}

/// One inode per entry, except hardlinks, which add a link to their target's inode.
fn assign_inodes(entries: &[Entry]) -> Result<(Vec<InodePlan>, Vec<u32>)> {
    let mut inodes: Vec<InodePlan> = Vec::new();
    let mut entry_inode = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let Kind::Hardlink { target } = &e.kind else {
            entry_inode.push(inodes.len() as u32);
            inodes.push(new_inode(i));
            continue;
        };
        let t = entries
            .binary_search_by(|x| path_cmp(&x.path, target))
            .ok()
            .filter(|&t| t < i && matches!(entries[t].kind, Kind::File { .. }));
        let Some(t) = t else {
            bail!(
                "{}: hardlink target {} is not an earlier regular file",
                display(&e.path),
                display(target)
            );
        };
        let ino = entry_inode[t];
        let plan = &mut inodes[ino as usize];
        plan.nlink = plan.nlink.checked_add(1).context("nlink overflow")?;
        entry_inode.push(ino);
    }
    Ok((inodes, entry_inode))
}

fn new_inode(entry: usize) -> InodePlan {
    InodePlan {
        entry,
        nlink: 1,
        size: 0,
        xattr_size: 0,
        layout: Layout::FlatPlain,
        nid: 0,
        blkaddr: NULL_ADDR,
        data_blocks: 0,
    }
}

/// Validates an inode's entry and fills in size, xattr size, nlink (dirs) and layout.
fn size_inode(ino: &mut InodePlan, e: &Entry, kids: &[u32], all: &[Entry]) -> Result<()> {
    ensure!(
        e.name().len() <= NAME_MAX,
        "name is {} bytes; EROFS holds at most 255",
        e.name().len()
    );
    ensure!(
        e.perm <= 0o7777,
        "permission bits {:o} exceed 0o7777",
        e.perm
    );
    ino.xattr_size = xattr::ibody_size(&e.xattrs)?;
    ino.size = match &e.kind {
        Kind::File { size, .. } => *size,
        Kind::Symlink { target } => {
            ensure!(
                !target.is_empty() && target.len() < 4096 && !target.contains(&0),
                "symlink target must be 1..=4095 bytes without NUL (is {} bytes)",
                target.len()
            );
            target.len() as u64
        }
        Kind::Dir => dir_size(ino, kids, all)?,
        Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
            ensure!(
                *major < 1 << 12 && *minor < 1 << 20,
                "device number {major}:{minor} does not fit the kernel's 12:20 bits"
            );
            0
        }
        Kind::Fifo | Kind::Socket | Kind::Hardlink { .. } => 0,
    };
    Ok(())
}

/// Directory size from its sorted names (with `.` and `..`); sets nlink = 2 + subdirectories.
fn dir_size(ino: &mut InodePlan, kids: &[u32], all: &[Entry]) -> Result<u64> {
    let mut names: Vec<&[u8]> = kids
        .iter()
        .map(|&k| all[k as usize].name().as_bytes())
        .collect();
    names.extend([b".".as_slice(), b"..".as_slice()]);
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "duplicate name {:?} in directory",
            String::from_utf8_lossy(w[0])
        );
    }
    let subdirs = kids
        .iter()
        .filter(|&&k| all[k as usize].kind == Kind::Dir)
        .count();
    ino.nlink = u32::try_from(subdirs + 2).context("too many subdirectories")?;
    Ok(dir::size(names.iter().map(|n| n.len())))
}

/// Places every inode record in the metadata area; returns the end offset of the area.
fn place_records(inodes: &mut [InodePlan]) -> u64 {
    let mut cursor = SUPER_OFFSET + SUPER_SIZE;
    for ino in inodes {
        let tail = ino.size % BLOCK_SIZE;
        let fixed = INODE_SIZE + ino.xattr_size;
        ino.layout = if tail > 0 && fixed + tail <= BLOCK_SIZE {
            Layout::FlatInline
        } else {
            Layout::FlatPlain
        };
        let need = ino.record_len();
        if cursor % BLOCK_SIZE + need > BLOCK_SIZE {
            cursor = cursor.next_multiple_of(BLOCK_SIZE);
        }
        ino.nid = cursor / SLOT_SIZE;
        cursor = (cursor + need).next_multiple_of(SLOT_SIZE);
    }
    cursor
}

/// Gives each inode its data blocks, in order, from `data_start`; returns total blocks.
fn assign_blocks(inodes: &mut [InodePlan], data_start: u64) -> Result<u64> {
    let mut next = data_start;
    for ino in inodes {
        ino.data_blocks = match ino.layout {
            Layout::FlatInline => ino.size / BLOCK_SIZE,
            Layout::FlatPlain => ino.size.div_ceil(BLOCK_SIZE),
        };
        if ino.data_blocks > 0 {
            ino.blkaddr = u32::try_from(next).context("image exceeds 2^32 blocks (16 TiB)")?;
            next += ino.data_blocks;
        } else if ino.size == 0 {
            ino.blkaddr = 0;
        }
    }
    ensure!(
        next <= u64::from(u32::MAX),
        "image exceeds 2^32 blocks (16 TiB)"
    );
    Ok(next)
}
