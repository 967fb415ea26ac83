//! The normalized root filesystem: one sorted list of entries whose file contents are read
//! lazily from a [`ContentStore`], so no stage ever holds file data of the whole tree in memory.

use std::fmt;
use std::io::{self, Read};

/// One extended attribute, full name including its namespace prefix (`security.capability`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Where the bytes of a regular file live; opened through the tree's [`ContentStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRef(pub u64);

/// The kind of an entry and its kind-specific payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        size: u64,
        data: DataRef,
    },
    Symlink {
        target: Vec<u8>,
    },
    /// A further name for an earlier regular file (`target` is that file's path; it sorts
    /// before this entry). Writers give both names one inode.
    Hardlink {
        target: String,
    },
    CharDev {
        major: u32,
        minor: u32,
    },
    BlockDev {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

/// One filesystem object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path with `/` separators and no leading `/`; `""` is the root directory.
    /// Every component is a valid Linux file name (non-empty, no `/` or NUL, not `.`/`..`,
    /// at most 255 bytes) and valid UTF-8.
    pub path: String,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch, already clamped to SOURCE_DATE_EPOCH.
    pub mtime: u64,
    /// Sorted by name, names unique.
    pub xattrs: Vec<Xattr>,
}

impl Entry {
    /// The last path component (`""` for the root).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory's path (`None` for the root).
    pub fn parent(&self) -> Option<&str> {
        parent_of(&self.path)
    }

    /// The `st_mode` file-type bits for this entry (`S_IFREG` for hardlinks).
    pub fn file_type_bits(&self) -> u32 {
        match self.kind {
            Kind::Dir => 0o040000,
            Kind::File { .. } | Kind::Hardlink { .. } => 0o100000,
            Kind::Symlink { .. } => 0o120000,
            Kind::CharDev { .. } => 0o020000,
            Kind::BlockDev { .. } => 0o060000,
            Kind::Fifo => 0o010000,
            Kind::Socket => 0o140000,
        }
    }

    /// Full `st_mode` (type bits | permission bits).
    pub fn mode(&self) -> u32 {
        self.file_type_bits() | u32::from(self.perm)
    }
}

/// Opens the content of regular files.
pub trait ContentStore: Send + Sync + fmt::Debug {
    fn open(&self, data: DataRef) -> io::Result<Box<dyn Read + '_>>;
}

/// A complete, validated, sorted tree.
///
/// Invariants (established by the readers in [`crate::rootfs`]): `entries[0]` is the root
/// directory; entries are sorted by path component-wise (byte order), so every directory
/// precedes its children and children of one directory are contiguous in name order; every
/// parent exists and is a directory; paths are unique; hardlink targets are earlier regular files.
#[derive(Debug)]
pub struct Tree {
    pub entries: Vec<Entry>,
    pub store: Box<dyn ContentStore>,
}

/// The parent of a relative path (`"a/b"` → `"a"`, `"a"` → `""`, `""` → `None`).
pub fn parent_of(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    Some(path.rsplit_once('/').map_or("", |(p, _)| p))
}

/// Component-wise path order used for [`Tree::entries`].
pub fn path_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_empty() || b.is_empty() {
        return a.len().cmp(&b.len()).then_with(|| a.cmp(b));
    }
    a.split('/').cmp(b.split('/'))
}
