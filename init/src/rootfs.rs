//! Mounting: the early API filesystems, the verified root, and `switch_root`.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::config::RootMode;
use crate::console;
use crate::error::{Context, Error};
use crate::sys;

/// Where the new root is assembled.
pub const SYSROOT: &str = "/sysroot";
/// Overlay mode: the erofs root.
pub const OVERLAY_LOWER: &str = "/run/nodeimg/lower";
/// Overlay mode: the tmpfs holding `upper` and `work`.
pub const OVERLAY_RW: &str = "/run/nodeimg/rw";

/// API filesystems mounted first and moved into the new root.
const API_MOUNTS: [(&str, &str, &str, libc::c_ulong, Option<&str>); 4] = [
    (
        "proc",
        "/proc",
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    ),
    (
        "sysfs",
        "/sys",
        "sysfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    ),
    (
        "devtmpfs",
        "/dev",
        "devtmpfs",
        libc::MS_NOSUID,
        Some("mode=0755"),
    ),
    (
        "tmpfs",
        "/run",
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    ),
];

const RAMFS_MAGIC: i64 = 0x8584_58f6;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Mounts /proc, /sys, /dev (devtmpfs) and /run (tmpfs); an already mounted one is fine.
pub fn mount_api_filesystems() -> Result<(), Error> {
    for (source, target, fstype, flags, data) in API_MOUNTS {
        fs::create_dir_all(target).ctx(|| format!("creating {target}"))?;
        match sys::mount(source, Path::new(target), Some(fstype), flags, data) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            other => other.ctx(|| format!("mounting {fstype} on {target}"))?,
        }
    }
    Ok(())
}

/// Turns `EIO` from reading the dm-verity device into the `verity:` error the boot test greps for.
pub fn verity_aware(action: String, err: &io::Error) -> Error {
    if err.raw_os_error() == Some(libc::EIO) {
        Error::msg(
            "verity",
            format!("root filesystem failed verification ({action}: EIO)"),
        )
    } else {
        Error::io(action, err)
    }
}

fn mount_erofs(device: &Path, target: &str) -> Result<(), Error> {
    fs::create_dir_all(target).ctx(|| format!("creating {target}"))?;
    let source = device.to_string_lossy();
    sys::mount(
        &source,
        Path::new(target),
        Some("erofs"),
        libc::MS_RDONLY,
        None,
    )
    .map_err(|e| verity_aware(format!("mount {source}"), &e))
}

/// Mounts the verified root at [`SYSROOT`] according to `mode`.
pub fn mount_root(mode: RootMode, device: &Path) -> Result<(), Error> {
    match mode {
        RootMode::ReadOnly => mount_erofs(device, SYSROOT),
        RootMode::VolatileOverlay => {
            mount_erofs(device, OVERLAY_LOWER)?;
            mount_overlay()
        }
    }
}

fn mount_overlay() -> Result<(), Error> {
    fs::create_dir_all(OVERLAY_RW).ctx(|| format!("creating {OVERLAY_RW}"))?;
    sys::mount(
        "tmpfs",
        Path::new(OVERLAY_RW),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )
    .ctx(|| format!("mounting tmpfs on {OVERLAY_RW}"))?;
    let upper = format!("{OVERLAY_RW}/upper");
    let work = format!("{OVERLAY_RW}/work");
    for dir in [&upper, &work] {
        fs::create_dir(dir).ctx(|| format!("creating {dir}"))?;
    }
    // The merged root directory takes its owner and mode from the upper directory.
    let lower = fs::metadata(OVERLAY_LOWER)
        .map_err(|e| verity_aware(format!("stat {OVERLAY_LOWER}"), &e))?;
    std::os::unix::fs::chown(&upper, Some(lower.uid()), Some(lower.gid()))
        .ctx(|| format!("chown {upper}"))?;
    fs::set_permissions(&upper, fs::Permissions::from_mode(lower.mode() & 0o7777))
        .ctx(|| format!("chmod {upper}"))?;
    fs::create_dir_all(SYSROOT).ctx(|| format!("creating {SYSROOT}"))?;
    let options = format!("lowerdir={OVERLAY_LOWER},upperdir={upper},workdir={work}");
    sys::mount(
        "overlay",
        Path::new(SYSROOT),
        Some("overlay"),
        0,
        Some(&options),
    )
    .map_err(|e| verity_aware(format!("mount overlay ({options}) on {SYSROOT}"), &e))
}

/// Moves the API mounts into the new root, empties the initramfs, enters the new root and
/// execs `init` with `args`. Returns only on failure.
pub fn switch_root(mode: RootMode, init: &Path, args: &[OsString]) -> Error {
    if let Err(e) = move_api_mounts(mode) {
        return e;
    }
    wipe_initramfs();
    if let Err(e) = enter_sysroot() {
        return e;
    }
    let err = Command::new(init).args(args).exec();
    verity_aware(format!("exec {} in the new root", init.display()), &err)
}

fn move_api_mounts(mode: RootMode) -> Result<(), Error> {
    for (_, source, ..) in API_MOUNTS {
        let target = Path::new(SYSROOT).join(&source[1..]);
        if !target.is_dir() {
            if mode == RootMode::VolatileOverlay {
                fs::create_dir(&target).ctx(|| format!("creating {}", target.display()))?;
            } else {
                console::warn(&format!(
                    "new root has no {source}; detaching it instead of moving"
                ));
                let _ = sys::umount2(Path::new(source), libc::MNT_DETACH);
                continue;
            }
        }
        sys::move_mount(Path::new(source), &target)
            .ctx(|| format!("moving {source} to {}", target.display()))?;
    }
    Ok(())
}

fn enter_sysroot() -> Result<(), Error> {
    std::env::set_current_dir(SYSROOT).ctx(|| format!("chdir {SYSROOT}"))?;
    sys::move_mount(Path::new("."), Path::new("/")).ctx(|| format!("moving {SYSROOT} to /"))?;
    sys::chroot(Path::new(".")).ctx(|| format!("chroot {SYSROOT}"))?;
    std::env::set_current_dir("/").ctx(|| "chdir / in the new root".to_string())
}

/// Frees the initramfs memory: deletes everything on the root filesystem, not crossing mounts.
///
/// Only acts when `/` is a ramfs/tmpfs and the new root is a separate mount; errors are ignored.
fn wipe_initramfs() {
    let is_ram = sys::fs_type(Path::new("/")).is_ok_and(|t| t == RAMFS_MAGIC || t == TMPFS_MAGIC);
    let (Ok(root), Ok(sysroot)) = (fs::symlink_metadata("/"), fs::symlink_metadata(SYSROOT)) else {
        return;
    };
    if is_ram && std::process::id() == 1 && root.dev() != sysroot.dev() {
        remove_children(Path::new("/"), root.dev());
    }
}

fn remove_children(dir: &Path, dev: u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev {
            continue; // a mount point such as /sysroot
        }
        if meta.is_dir() {
            remove_children(&path, dev);
            let _ = fs::remove_dir(&path);
        } else {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eio_becomes_a_verity_error() {
        let cases = [
            (
                libc::EIO,
                "verity: root filesystem failed verification (mount /dev/mapper/root: EIO)",
            ),
            (
                libc::EINVAL,
                "mount /dev/mapper/root: EINVAL (Invalid argument)",
            ),
        ];
        for (errno, want) in cases {
            let e = verity_aware(
                "mount /dev/mapper/root".into(),
                &io::Error::from_raw_os_error(errno),
            );
            assert_eq!(e.to_string(), want);
        }
    }
}
