//! Directory input: a walk that never follows symlinks (`lstat`, `O_NOFOLLOW`), sorted by name.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::normalize::{clean_path, Builder};
use super::store::DirFiles;
use super::tree::{DataRef, Entry, Kind, Tree, Xattr};

/// Reads the directory `root` into a [`Tree`].
pub fn read(root: &Path, epoch: u64) -> Result<Tree> {
    let meta = std::fs::symlink_metadata(root)
        .with_context(|| format!("reading rootfs directory {}", root.display()))?;
    if !meta.is_dir() {
        bail!("rootfs directory {} is not a directory", root.display());
    }
    let mut w = Walk {
        builder: Builder::default(),
        files: Vec::new(),
        inodes: HashMap::new(),
    };
    w.visit(root, "", &meta)?;
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .map(|d| d.map(|d| d.file_name()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("listing {}", dir.display()))?;
        names.sort();
        for name in names {
            let full = dir.join(&name);
            let child = clean_path(
                format!("{rel}/")
                    .as_bytes()
                    .iter()
                    .chain(name.as_bytes())
                    .copied()
                    .collect::<Vec<_>>()
                    .as_slice(),
            )
            .with_context(|| format!("{}", full.display()))?;
            let m = std::fs::symlink_metadata(&full)
                .with_context(|| format!("lstat {}", full.display()))?;
            w.visit(&full, &child, &m)?;
            if m.is_dir() {
                stack.push((full, child));
            }
        }
    }
    let entries = w.builder.finish(epoch)?;
    Ok(Tree {
        entries,
        store: Box::new(DirFiles { files: w.files }),
    })
}

struct Walk {
    builder: Builder,
    files: Vec<(PathBuf, u64)>,
    /// (dev, ino) → first path, for hardlink detection.
    inodes: HashMap<(u64, u64), String>,
}

impl Walk {
    fn visit(&mut self, full: &Path, rel: &str, m: &std::fs::Metadata) -> Result<()> {
        let ft = m.file_type();
        let dev = || (libc::major(m.rdev()), libc::minor(m.rdev()));
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink {
                target: std::fs::read_link(full)?.as_os_str().as_bytes().to_vec(),
            }
        } else if ft.is_file() {
            match self.inodes.get(&(m.dev(), m.ino())) {
                Some(first) if m.nlink() > 1 => Kind::Hardlink {
                    target: first.clone(),
                },
                _ => {
                    if m.nlink() > 1 {
                        self.inodes.insert((m.dev(), m.ino()), rel.to_string());
                    }
                    self.files.push((full.to_path_buf(), m.len()));
                    Kind::File {
                        size: m.len(),
                        data: DataRef(self.files.len() as u64 - 1),
                    }
                }
            }
        } else if ft.is_char_device() {
            let (major, minor) = dev();
            Kind::CharDev { major, minor }
        } else if ft.is_block_device() {
            let (major, minor) = dev();
            Kind::BlockDev { major, minor }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        };
        let xattrs =
            read_xattrs(full).with_context(|| format!("reading xattrs of {}", full.display()))?;
        let e = Entry {
            path: rel.to_string(),
            kind,
            perm: (m.mode() & 0o7777) as u16,
            uid: m.uid(),
            gid: m.gid(),
            mtime: m.mtime().max(0) as u64,
            xattrs,
        };
        self.builder
            .add(e)
            .with_context(|| format!("{}", full.display()))
    }
}

/// All xattrs of `path` itself (not a symlink's target).
fn read_xattrs(path: &Path) -> Result<Vec<Xattr>> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    let names = xattr_call(|buf, len| unsafe {
        libc::llistxattr(c.as_ptr(), buf as *mut libc::c_char, len)
    })?;
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name)?;
        let value = xattr_call(|buf, len| unsafe {
            libc::lgetxattr(c.as_ptr(), cn.as_ptr(), buf as *mut libc::c_void, len)
        })?;
        out.push(Xattr {
            name: name.to_vec(),
            value,
        });
    }
    Ok(out)
}

/// Calls a size-probing xattr syscall twice (size, then data), retrying if it grew.
fn xattr_call(f: impl Fn(*mut u8, usize) -> isize) -> Result<Vec<u8>> {
    loop {
        let n = f(std::ptr::null_mut(), 0);
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOTSUP) {
                return Ok(Vec::new());
            }
            return Err(e.into());
        }
        let mut buf = vec![0u8; n as usize];
        let m = f(buf.as_mut_ptr(), buf.len());
        if m >= 0 {
            buf.truncate(m as usize);
            return Ok(buf);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return Err(std::io::Error::last_os_error().into());
        }
    }
}
