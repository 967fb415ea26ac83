//! A minimal EROFS reader for the unit tests: it reads back exactly the subset the writer
//! emits (extended inodes, flat layouts, inline xattrs) and panics on anything else. The
//! independent checks are fsck.erofs and the kernel (tests crate); this one checks that the
//! writer put every field where the format says.

use std::collections::BTreeMap;

pub const BLK: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub nid: u64,
    pub layout: u16,
    pub mode: u16,
    pub size: u64,
    pub i_u: u32,
    pub ino: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub nlink: u32,
    pub xattr_size: usize,
    /// Full names (prefix restored) and values, in on-disk order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub struct Image<'a>(pub &'a [u8]);

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl Image<'_> {
    pub fn sb(&self) -> &[u8] {
        &self.0[1024..1152]
    }

    pub fn root_nid(&self) -> u64 {
        u64::from(le16(self.sb(), 14))
    }

    pub fn inode(&self, nid: u64) -> Inode {
        let off = nid as usize * 32;
        let b = &self.0[off..off + 64];
        let format = le16(b, 0);
        assert_eq!(format & 1, 1, "nid {nid}: not an extended inode");
        let icount = le16(b, 2) as usize;
        let xattr_size = if icount == 0 {
            0
        } else {
            12 + 4 * (icount - 1)
        };
        let mut ino = Inode {
            nid,
            layout: format >> 1,
            mode: le16(b, 4),
            size: le64(b, 8),
            i_u: le32(b, 16),
            ino: le32(b, 20),
            uid: le32(b, 24),
            gid: le32(b, 28),
            mtime: le64(b, 32),
            nlink: le32(b, 44),
            xattr_size,
            xattrs: Vec::new(),
        };
        ino.xattrs = self.xattrs(off + 64, xattr_size);
        ino
    }

    fn xattrs(&self, start: usize, size: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        if size == 0 {
            return out;
        }
        assert_eq!(self.0[start + 4], 0, "shared xattr count");
        let (mut p, end) = (start + 12, start + size);
        while p < end {
            let (nlen, idx, vlen) = (
                self.0[p] as usize,
                self.0[p + 1],
                le16(self.0, p + 2) as usize,
            );
            let prefix: &[u8] = match idx {
                1 => b"user.",
                2 => b"system.posix_acl_access",
                3 => b"system.posix_acl_default",
                4 => b"trusted.",
                6 => b"security.",
                other => panic!("unknown xattr index {other}"),
            };
            let name = [prefix, &self.0[p + 4..p + 4 + nlen]].concat();
            let value = self.0[p + 4 + nlen..p + 4 + nlen + vlen].to_vec();
            out.push((name, value));
            p += (4 + nlen + vlen).next_multiple_of(4);
        }
        assert_eq!(p, end, "xattr entries overrun the ibody");
        out
    }

    /// The inode's data (file content, symlink target or directory blocks).
    pub fn data(&self, ino: &Inode) -> Vec<u8> {
        let size = ino.size as usize;
        let (blocks_len, tail_len) = match ino.layout {
            0 => (size, 0),
            2 => (size / BLK * BLK, size % BLK),
            other => panic!("nid {}: layout {other}", ino.nid),
        };
        let mut out = Vec::with_capacity(size);
        if blocks_len > 0 {
            let start = ino.i_u as usize * BLK;
            out.extend_from_slice(&self.0[start..start + blocks_len]);
        }
        let tail_at = ino.nid as usize * 32 + 64 + ino.xattr_size;
        assert!(
            tail_at % BLK + tail_len <= BLK,
            "nid {}: inline tail crosses a block",
            ino.nid
        );
        out.extend_from_slice(&self.0[tail_at..tail_at + tail_len]);
        out
    }

    /// Directory entries (name, nid, file type) in on-disk order.
    pub fn readdir(&self, dir: &Inode) -> Vec<(Vec<u8>, u64, u8)> {
        let data = self.data(dir);
        let mut out = Vec::new();
        for block in data.chunks(BLK) {
            let n = le16(block, 8) as usize / 12;
            for i in 0..n {
                let d = &block[i * 12..i * 12 + 12];
                let start = le16(d, 8) as usize;
                let end = if i + 1 < n {
                    le16(block, (i + 1) * 12 + 8) as usize
                } else {
                    block[start..]
                        .iter()
                        .position(|&c| c == 0)
                        .map_or(block.len(), |z| start + z)
                };
                out.push((block[start..end].to_vec(), le64(d, 0), d[10]));
            }
        }
        out
    }

    /// Every path (without `.`/`..`; root is "") → inode, walking from the root.
    pub fn walk(&self) -> BTreeMap<String, Inode> {
        let mut out = BTreeMap::new();
        let mut todo = vec![(String::new(), self.root_nid())];
        while let Some((path, nid)) = todo.pop() {
            let ino = self.inode(nid);
            if ino.mode & 0o170000 == 0o040000 {
                for (name, child, _) in self.readdir(&ino) {
                    if name == b"." || name == b".." {
                        continue;
                    }
                    let name = String::from_utf8(name).unwrap();
                    let p = if path.is_empty() {
                        name
                    } else {
                        format!("{path}/{name}")
                    };
                    todo.push((p, child));
                }
            }
            out.insert(path, ino);
        }
        out
    }
}
