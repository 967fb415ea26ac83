//! Read-only file mappings, to hash large files in the page cache without copying them.
//!
//! Used by the verity hasher: for the disk.raw nodeimg itself staged (`build`) and for the
//! disk image `inspect` checks; and by the disk-format writers (`build --format`, `convert`). A mapped file that another process truncates while it is read
//! raises SIGBUS (the process dies instead of printing an error): do not use these for inputs
//! that are routinely rewritten in place.

use std::fs::File;

/// A read-only shared mapping of a page-aligned region of a file that is at least that long.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and only ever read through `&[u8]`.
unsafe impl Sync for Mapping {}
// SAFETY: a mapping belongs to the process, not a thread: any thread may read it and unmap it
// (`Drop`), and nothing else refers to the pointer.
unsafe impl Send for Mapping {}

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
