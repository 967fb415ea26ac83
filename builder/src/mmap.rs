//! Read-only file mappings, to hash large files in the page cache without copying them.
//!
//! Used by the verity hasher: for the disk.raw nodeimg itself staged (`build`) and for the
//! disk image `inspect` checks; and by the disk-format writers (`build --format`, `convert`).
//!
//! A mapped file that another process truncates while it is read raises SIGBUS at the first
//! access past its new end. The process does not die of it: a handler (installed with the first
//! mapping) finds the mapping the faulting address lies in, prints an error naming the file,
//! removes the temporary files registered with [`remove_on_fault`] and exits with status 1. A
//! SIGBUS outside every mapping goes to the handler that was there before (Rust's own, or the
//! default action).

use std::ffi::CString;
use std::fs::File;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

/// Slots for live mappings and for files to remove: the signal handler reads them without
/// locks. More mappings than slots are still made; a fault in one that has no slot is reported
/// without its file name.
const SLOTS: usize = 64;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    path: AtomicPtr<libc::c_char>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    path: AtomicPtr::new(std::ptr::null_mut()),
};
static MAPPED: [Slot; SLOTS] = [EMPTY; SLOTS];
#[allow(clippy::declare_interior_mutable_const)]
const NO_PATH: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
static REMOVE: [AtomicPtr<libc::c_char>; SLOTS] = [NO_PATH; SLOTS];
static INSTALL: Once = Once::new();
/// The SIGBUS action before ours, restored for faults that are not in a mapping.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// A file [`remove_on_fault`] registered; unregistered when dropped.
#[derive(Debug)]
pub struct RemoveOnFault {
    slot: Option<usize>,
    path: *mut libc::c_char,
}

/// Registers `path` (a temporary output) to be removed if a mapped input is truncated under
/// the process (see the module docs).
pub fn remove_on_fault(path: &std::path::Path) -> RemoveOnFault {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return RemoveOnFault {
            slot: None,
            path: std::ptr::null_mut(),
        };
    };
    let raw = c.into_raw();
    let slot = REMOVE.iter().position(|p| {
        p.compare_exchange(
            std::ptr::null_mut(),
            raw,
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok()
    });
    RemoveOnFault { slot, path: raw }
}

impl Drop for RemoveOnFault {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            REMOVE[i].store(std::ptr::null_mut(), Ordering::Release);
        }
        if !self.path.is_null() {
            // SAFETY: made by `CString::into_raw` in `remove_on_fault`, freed once; the slot no
            // longer points to it.
            drop(unsafe { CString::from_raw(self.path) });
        }
    }
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: write(2) is async-signal-safe; `bytes` is valid for its length.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let hit = MAPPED.iter().find(|s| {
        let (start, len) = (
            s.start.load(Ordering::Acquire),
            s.len.load(Ordering::Acquire),
        );
        start != 0 && addr >= start && addr - start < len
    });
    let Some(slot) = hit else {
        // Not ours: hand it to the previous action (the faulting access runs again).
        // SAFETY: PREVIOUS was filled by sigaction before this handler was installed.
        unsafe {
            let prev = &*std::ptr::addr_of!(PREVIOUS).cast::<libc::sigaction>();
            if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN {
                if prev.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(prev.sa_sigaction);
                    return f(sig, info, ctx);
                }
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                return f(sig);
            }
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
        return;
    };
    write_stderr(b"error: ");
    let path = slot.path.load(Ordering::Acquire);
    if path.is_null() {
        write_stderr(b"a file nodeimg was reading");
    } else {
        // SAFETY: the faulting thread is reading this mapping, so it (and its path) is alive.
        write_stderr(unsafe { std::ffi::CStr::from_ptr(path) }.to_bytes());
    }
    write_stderr(
        b": the file shrank while nodeimg was reading it (another process truncated or \
          rewrote it); nothing was written under an output's name. Run again once nothing \
          else writes to it.\n",
    );
    for p in &REMOVE {
        let p = p.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: unlink(2) is async-signal-safe; `p` is a live NUL-terminated path.
            unsafe { libc::unlink(p) };
        }
    }
    // SAFETY: _exit(2) is async-signal-safe and does not return.
    unsafe { libc::_exit(1) };
}

fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler only uses async-signal-safe calls
        // and lock-free atomics; PREVIOUS is written here once, before the handler can run.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(
                libc::SIGBUS,
                &act,
                std::ptr::addr_of_mut!(PREVIOUS).cast::<libc::sigaction>(),
            );
        }
    });
}

/// The path of an open file, for error messages (`/proc/self/fd`).
fn fd_path(file: &File) -> Option<CString> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let p = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    CString::new(p.as_os_str().as_bytes()).ok()
}

/// A read-only shared mapping of a page-aligned region of a file that is at least that long.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    /// Its slot in `MAPPED` and the path the slot points to.
    slot: Option<usize>,
    path: *mut libc::c_char,
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
            || !offset.is_multiple_of(page as u64)
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
        install_handler();
        let path = fd_path(file).map_or(std::ptr::null_mut(), CString::into_raw);
        let slot = MAPPED.iter().position(|s| {
            s.len
                .compare_exchange(0, len, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        if let Some(i) = slot {
            MAPPED[i].path.store(path, Ordering::Release);
            MAPPED[i].start.store(ptr as usize, Ordering::Release);
        }
        Some(Mapping {
            ptr,
            len,
            slot,
            path,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let s = &MAPPED[i];
            s.start.store(0, Ordering::Release);
            s.path.store(std::ptr::null_mut(), Ordering::Release);
            s.len.store(0, Ordering::Release);
        }
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr, self.len) };
        if !self.path.is_null() {
            // SAFETY: made by `CString::into_raw` in `new`, freed once; the slot no longer
            // points to it.
            drop(unsafe { CString::from_raw(self.path) });
        }
    }
}
