//! Read-only file mappings, to hash large files in the page cache without copying them.
//!
//! A mapped file that another process truncates while it is read raises SIGBUS: use these only
//! for files nodeimg itself staged (disk.raw) or that the user hands to a one-shot command
//! (`measure uki`), where a copy would cost more than the risk.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use anyhow::{Context, Result};

/// A read-only shared mapping of a page-aligned region of a file that is at least that long.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and only ever read through `&[u8]`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `file` (of `file_len` bytes) from `offset`; `None` (the caller
    /// falls back to reads) if `offset` is not page-aligned, the range runs past the end of
    /// the file, or `mmap` fails.
    pub fn new(file: &File, file_len: u64, offset: u64, len: usize) -> Option<Mapping> {
        use std::os::fd::AsRawFd;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page <= 0
            || offset % page as u64 != 0
            || len == 0
            || offset.checked_add(len as u64)? > file_len
        {
            return None;
        }
        // SAFETY: a fresh read-only mapping of a range that lies inside the file; nothing
        // aliases it mutably. A concurrent truncation of the file by another process could
        // raise SIGBUS (see the module docs).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                libc::off_t::try_from(offset).ok()?,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Mapping { ptr, len })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// A whole file's bytes: mapped where possible, read into memory otherwise (empty files,
/// files that cannot be mapped).
#[derive(Debug)]
pub enum FileBytes {
    Mapped(Mapping),
    Read(Vec<u8>),
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m.bytes(),
            FileBytes::Read(v) => v,
        }
    }
}

/// The bytes of the file at `path`.
pub fn file_bytes(path: &Path) -> Result<FileBytes> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    let n = usize::try_from(len).context("the file does not fit in memory")?;
    if let Some(m) = Mapping::new(&f, len, 0, n) {
        return Ok(FileBytes::Mapped(m));
    }
    Ok(FileBytes::Read(
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    ))
}
