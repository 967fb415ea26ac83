//! Writing a file the user named on the command line (`sign -o`, `boot --save-event-log`,
//! `man DIR`'s pages): `-` is stdout; a new or regular file is replaced atomically (temporary
//! file in the same directory + rename), so readers never see half a file; a character device or
//! FIFO (`/dev/null`, `/dev/stdout`, a pipe) is written to directly, never replaced by a rename
//! (which, as root, would turn `/dev/null` into a regular file); a symlink is written through,
//! in place, so the link stays a link; directories, block devices and sockets are refused.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Writes `bytes` to `path` as described in the module doc; new files get `mode`.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
        return Ok(());
    }
    let ctx = || format!("writing {}", path.display());
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => replace(path, bytes, mode),
        Err(e) => Err(e).with_context(ctx),
        Ok(m) if m.file_type().is_file() => replace(path, bytes, mode),
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::metadata(path).with_context(|| {
                format!(
                    "{}: a symlink whose target cannot be reached",
                    path.display()
                )
            })?;
            check_writable_type(path, &target.file_type())?;
            // Through the link, in place: truncate only regular files.
            in_place(path, bytes, target.file_type().is_file()).with_context(ctx)
        }
        Ok(m) => {
            check_writable_type(path, &m.file_type())?;
            in_place(path, bytes, false).with_context(ctx)
        }
    }
}

/// Regular files, character devices and FIFOs are fine; the rest is refused, naming why.
fn check_writable_type(path: &Path, t: &fs::FileType) -> Result<()> {
    let what = if t.is_dir() {
        "a directory"
    } else if t.is_block_device() {
        "a block device (nodeimg does not write its output onto a disk)"
    } else if t.is_socket() {
        "a socket"
    } else {
        return Ok(());
    };
    bail!(
        "{} is {what}: choose a file path, or - for stdout",
        path.display()
    )
}

fn in_place(path: &Path, bytes: &[u8], truncate: bool) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(truncate)
        .open(path)?;
    f.write_all(bytes)?;
    f.flush()
}

fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn regular_files_are_replaced_and_new_ones_get_the_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("b.json");
        write(&p, b"one", 0o644).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        let ino = fs::metadata(&p).unwrap().ino();
        write(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_ne!(fs::metadata(&p).unwrap().ino(), ino, "replaced by a rename");
    }

    #[test]
    fn devices_and_fifos_are_written_not_replaced() {
        // /dev/null stays a character device.
        write(Path::new("/dev/null"), b"bundle", 0o644).unwrap();
        assert!(fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        // A FIFO gets the bytes and stays a FIFO.
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        write(&fifo, b"through the pipe", 0o644).unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn symlinks_are_written_through_and_stay_links() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("real.json");
        fs::write(&target, b"a longer earlier content").unwrap();
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write(&link, b"short", 0o644).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"short");
        let dangling = d.path().join("dangling");
        std::os::unix::fs::symlink(d.path().join("nowhere/x"), &dangling).unwrap();
        let e = write(&dangling, b"x", 0o644).unwrap_err();
        assert!(
            format!("{e:#}").contains("target cannot be reached"),
            "{e:#}"
        );
    }

    #[test]
    fn directories_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = write(d.path(), b"x", 0o644).unwrap_err();
        assert!(format!("{e:#}").contains("is a directory"), "{e:#}");
    }
}
