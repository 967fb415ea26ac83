//! Thin wrappers around the system calls the init needs that `std` does not offer.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::devnum::DevNum;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `mount(2)`.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = cstr(source)?;
    let target = cpath(target)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    check(ret)
}

/// Moves the mount at `from` to `to` (`MS_MOVE`).
pub fn move_mount(from: &Path, to: &Path) -> io::Result<()> {
    let from = from
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "non-UTF-8 path"))?;
    mount(from, to, None, libc::MS_MOVE, None)
}

/// `umount2(2)`.
pub fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = cpath(target)?;
    // SAFETY: target is a valid NUL-terminated string.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })
}

/// Creates a block device node.
pub fn mknod_block(path: &Path, dev: DevNum, perm: libc::mode_t) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: p is a valid NUL-terminated string.
    check(unsafe { libc::mknod(p.as_ptr(), libc::S_IFBLK | perm, dev.to_dev_t()) })
}

/// Creates a character device node.
pub fn mknod_char(path: &Path, dev: DevNum, perm: libc::mode_t) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: p is a valid NUL-terminated string.
    check(unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | perm, dev.to_dev_t()) })
}

/// Loads a kernel module from an open file (`finit_module(fd, "", 0)`).
pub fn finit_module(file: &File) -> io::Result<()> {
    let params = c"";
    // SAFETY: the fd is open for the duration of the call; params is a static C string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            0 as libc::c_int,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `chroot(2)`.
pub fn chroot(path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: p is a valid NUL-terminated string.
    check(unsafe { libc::chroot(p.as_ptr()) })
}

/// `sync(2)`.
pub fn sync() {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::sync() }
}

/// Waits until everything written to fd 1 and 2 has left the serial line (if they are ttys).
pub fn drain_console() {
    for fd in [1, 2] {
        // SAFETY: tcdrain on a possibly-closed or non-tty fd just returns an error.
        unsafe {
            libc::tcdrain(fd);
        }
    }
}

/// `reboot(RB_POWER_OFF)`; returns only on failure.
pub fn power_off() -> io::Error {
    // SAFETY: plain syscall; on success it does not return.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    io::Error::last_os_error()
}

/// The filesystem magic (`f_type`) of the filesystem holding `path`.
pub fn fs_type(path: &Path) -> io::Result<i64> {
    let p = cpath(path)?;
    // SAFETY: statfs fills the zero-initialised struct; p is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statfs(p.as_ptr(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// An `_IOWR` ioctl whose argument is `buf`.
pub fn ioctl_buf(file: &File, request: u32, buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: buf is valid for reads and writes of its whole length, which the request's
    // header (`data_size`) tells the kernel; the kernel never writes beyond it.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), request as libc::Ioctl, buf.as_mut_ptr()) };
    check(ret)
}

/// True when fd `fd` is open.
pub fn fd_is_open(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD on any integer is harmless.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Points fds 0, 1 and 2 at `file`.
pub fn redirect_stdio(file: &File) {
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard fds; failure leaves them as they were.
        unsafe {
            libc::dup2(file.as_raw_fd(), fd);
        }
    }
}
