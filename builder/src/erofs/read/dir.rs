//! Directories: decoding `erofs_dirent` blocks, walking the tree from the root (each directory
//! once; `.` and `..` checked), and turning an image back into a [`Tree`].

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};

use anyhow::{ensure, Context, Result};

use super::{le16, le64, Image, Inode, InodeKind, ReadAt};
use crate::rootfs::{path_cmp, ContentStore, DataRef, Entry, Kind, Tree};

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    pub name: Vec<u8>,
    pub nid: u64,
    /// `EROFS_FT_*` (0 = unknown).
    pub file_type: u8,
}

/// A path of the tree and its inode.
#[derive(Debug, Clone)]
pub struct Node {
    /// Relative path, `""` for the root (as in [`Tree`]).
    pub path: String,
    pub inode: Inode,
}

const DIRENT: usize = 12;

/// Decodes one directory block (`b` is the block's used bytes).
fn block_entries(b: &[u8], out: &mut Vec<Dirent>) -> Result<()> {
    ensure!(
        b.len() >= DIRENT,
        "directory block of {} bytes holds no entry",
        b.len()
    );
    let first = usize::from(le16(b, 8));
    ensure!(
        first >= DIRENT && first % DIRENT == 0 && first <= b.len(),
        "first name offset {first} is not a multiple of 12 within the {}-byte block",
        b.len()
    );
    let count = first / DIRENT;
    for i in 0..count {
        let d = &b[i * DIRENT..(i + 1) * DIRENT];
        let start = usize::from(le16(d, 8));
        let end = if i + 1 < count {
            usize::from(le16(b, (i + 1) * DIRENT + 8))
        } else {
            let rest = b.get(start..).unwrap_or_default();
            start + rest.iter().position(|&c| c == 0).unwrap_or(rest.len())
        };
        ensure!(
            first <= start && start < end && end <= b.len(),
            "entry {i}: name at {start}..{end} outside the names area {first}..{}",
            b.len()
        );
        let name = &b[start..end];
        ensure!(
            name.len() <= 255 && !name.contains(&b'/') && !name.contains(&0),
            "entry {i}: invalid name {:?}",
            String::from_utf8_lossy(name)
        );
        out.push(Dirent {
            name: name.to_vec(),
            nid: le64(d, 0),
            file_type: d[10],
        });
    }
    Ok(())
}

/// The `EROFS_FT_*` value for an inode kind.
fn file_type(k: InodeKind) -> u8 {
    match k {
        InodeKind::File => 1,
        InodeKind::Dir => 2,
        InodeKind::CharDev { .. } => 3,
        InodeKind::BlockDev { .. } => 4,
        InodeKind::Fifo => 5,
        InodeKind::Socket => 6,
        InodeKind::Symlink => 7,
    }
}

impl<S: ReadAt> Image<S> {
    /// All entries of a directory (including `.` and `..`) in on-disk order.
    pub fn readdir(&self, dir: &Inode) -> Result<Vec<Dirent>> {
        ensure!(
            dir.kind == InodeKind::Dir,
            "nid {} is not a directory",
            dir.nid
        );
        let data = self.read_small(dir)?;
        let bs = usize::try_from(self.sb.block_size).context("block size")?;
        let mut out = Vec::new();
        for (n, block) in data.chunks(bs).enumerate() {
            block_entries(block, &mut out)
                .with_context(|| format!("directory nid {}, block {n}", dir.nid))?;
        }
        Ok(out)
    }

    /// Every path from the root, sorted like [`Tree::entries`]. Refuses directories reached
    /// twice (cycles, hardlinked directories), wrong `.`/`..`, duplicate or non-UTF-8 names and
    /// dirent types that contradict the inode.
    pub fn walk(&self) -> Result<Vec<Node>> {
        let root = self.inode(self.sb.root_nid)?;
        let mut seen_dirs = HashSet::from([root.nid]);
        let mut todo = vec![(String::new(), root.nid, root)];
        let mut out = Vec::new();
        while let Some((path, parent, ino)) = todo.pop() {
            if ino.kind == InodeKind::Dir {
                let shown = format!("/{path}");
                for (name, child) in self.children(&ino, parent).with_context(|| shown.clone())? {
                    let p = if path.is_empty() {
                        name
                    } else {
                        format!("{path}/{name}")
                    };
                    if child.kind == InodeKind::Dir {
                        ensure!(
                            seen_dirs.insert(child.nid),
                            "/{p}: directory nid {} is reached twice (a cycle or a hardlinked directory)",
                            child.nid
                        );
                    }
                    todo.push((p, ino.nid, child));
                }
            }
            out.push(Node { path, inode: ino });
        }
        out.sort_by(|a, b| path_cmp(&a.path, &b.path));
        Ok(out)
    }

    /// A directory's children (without `.`/`..`, which are checked) with their inodes.
    fn children(&self, dir: &Inode, parent: u64) -> Result<Vec<(String, Inode)>> {
        let mut names = HashSet::new();
        let (mut dot, mut dotdot) = (false, false);
        let mut out = Vec::new();
        for d in self.readdir(dir)? {
            match d.name.as_slice() {
                b"." => {
                    ensure!(d.nid == dir.nid, "`.` points at nid {}, not itself", d.nid);
                    dot = true;
                }
                b".." => {
                    ensure!(
                        d.nid == parent,
                        "`..` points at nid {}, not nid {parent}",
                        d.nid
                    );
                    dotdot = true;
                }
                _ => {
                    let name = String::from_utf8(d.name.clone()).map_err(|_| {
                        anyhow::anyhow!("name {:?} is not UTF-8", String::from_utf8_lossy(&d.name))
                    })?;
                    ensure!(names.insert(d.name), "duplicate name `{name}`");
                    let child = self
                        .inode(d.nid)
                        .with_context(|| format!("entry `{name}`"))?;
                    let ft = file_type(child.kind);
                    ensure!(
                        d.file_type == 0 || d.file_type == ft,
                        "entry `{name}`: dirent type {} but the inode's mode says {ft}",
                        d.file_type
                    );
                    out.push((name, child));
                }
            }
        }
        ensure!(dot && dotdot, "directory nid {} lacks `.` or `..`", dir.nid);
        Ok(out)
    }
}

impl<S: ReadAt + std::fmt::Debug + 'static> Image<S> {
    /// The image as a [`Tree`]: the first name (in tree order) of a multiply-linked file holds
    /// it, later names are hardlinks; contents are read from the image on demand.
    pub fn into_tree(self) -> Result<Tree> {
        let nodes = self.walk()?;
        let mut first_name: BTreeMap<u64, String> = BTreeMap::new();
        let mut entries = Vec::with_capacity(nodes.len());
        for n in nodes {
            let kind = self
                .entry_kind(&n, &mut first_name)
                .with_context(|| format!("/{}", n.path))?;
            let i = &n.inode;
            entries.push(Entry {
                path: n.path,
                kind,
                perm: i.mode & 0o7777,
                uid: i.uid,
                gid: i.gid,
                mtime: i.mtime,
                xattrs: i.xattrs.clone(),
            });
        }
        for e in &mut entries {
            e.xattrs.sort();
        }
        Ok(Tree {
            entries,
            store: Box::new(self),
        })
    }

    fn entry_kind(&self, n: &Node, first: &mut BTreeMap<u64, String>) -> Result<Kind> {
        let i = &n.inode;
        if i.kind != InodeKind::Dir {
            if let Some(target) = first.get(&i.nid) {
                ensure!(
                    i.kind == InodeKind::File,
                    "only regular files can be hardlinked in a tree"
                );
                return Ok(Kind::Hardlink {
                    target: target.clone(),
                });
            }
            first.insert(i.nid, n.path.clone());
        }
        Ok(match i.kind {
            InodeKind::Dir => Kind::Dir,
            InodeKind::File => Kind::File {
                size: i.size,
                data: DataRef(i.nid),
            },
            InodeKind::Symlink => Kind::Symlink {
                target: self.symlink_target(i)?,
            },
            InodeKind::CharDev { major, minor } => Kind::CharDev { major, minor },
            InodeKind::BlockDev { major, minor } => Kind::BlockDev { major, minor },
            InodeKind::Fifo => Kind::Fifo,
            InodeKind::Socket => Kind::Socket,
        })
    }
}

/// Contents by nid (`DataRef(nid)`), read from the image.
impl<S: ReadAt + std::fmt::Debug> ContentStore for Image<S> {
    fn open(&self, data: DataRef) -> io::Result<Box<dyn Read + '_>> {
        let ino = self
            .inode(data.0)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        if ino.kind != InodeKind::File {
            return Err(io::Error::other(format!(
                "nid {} is not a regular file",
                data.0
            )));
        }
        Ok(Box::new(OwnedReader {
            img: self,
            ino,
            pos: 0,
        }))
    }
}

struct OwnedReader<'a, S> {
    img: &'a Image<S>,
    ino: Inode,
    pos: u64,
}

impl<S: ReadAt> Read for OwnedReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .img
            .read_at(&self.ino, self.pos, buf)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        self.pos += n as u64;
        Ok(n)
    }
}
