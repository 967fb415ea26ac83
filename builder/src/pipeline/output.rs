//! Staged outputs: everything is written inside `DIR/.nodeimg-staging-*` and renamed into
//! `DIR` at the end; on failure the staging dir (and `DIR`, if this build created it) vanish.
//!
//! A build killed with SIGKILL cannot clean up, so each build holds an exclusive `flock` on its
//! staging directory, and the next build in `DIR` removes every `.nodeimg-staging-*` whose lock
//! it can take (its owner is gone; a concurrent build's stays).
//!
//! Builds sharing `DIR` serialize on an exclusive `flock` of `DIR` itself for the two moments
//! they touch it: creating + locking their staging directory (so no other build's stale-staging
//! cleanup runs in between), and the commit. The commit replaces the whole set of outputs:
//! `SHA256SUMS` goes first, every output of an earlier build (`OUTPUTS`, also ones this build does
//! not produce, like a stale `manifest.sigstore.json`) is moved aside into the staging directory,
//! the new files are renamed in, `SHA256SUMS` last. If a rename fails, the new files are moved
//! back out and the earlier ones restored. So `DIR` holds one build's outputs, never a mix, and
//! when `SHA256SUMS` exists it lists the files beside it (also after a kill mid-commit, which
//! leaves no `SHA256SUMS`).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use measurements::manifest::Artifact;
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub struct Staging {
    out_dir: PathBuf,
    created_out_dir: bool,
    dir: Option<tempfile::TempDir>,
    /// The open staging directory, `flock`ed for the life of the build.
    _lock: File,
}

const PREFIX: &str = ".nodeimg-staging-";

/// Every file name a build may put into the output directory (SHA256SUMS last). A commit
/// removes those of an earlier build that it does not replace; nothing else in DIR is touched.
pub const OUTPUTS: &[&str] = &[
    "disk.raw",
    "disk.qcow2",
    "disk.vhd",
    "disk.tar.gz",
    "disk.vmdk",
    "sbom.cdx.json",
    "uki.efi",
    "manifest.json",
    "manifest.sigstore.json",
    "SHA256SUMS",
];

/// Waits for and takes an exclusive `flock` on the directory `dir` (released when dropped).
fn lock_dir_wait(dir: &Path) -> Result<File> {
    use std::os::fd::AsRawFd;
    let f = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).with_context(|| format!("locking {}", dir.display()));
        }
    }
}

/// Opens `dir` and takes an exclusive `flock` on it; `Ok(None)` if another process holds it.
fn lock_dir(dir: &Path) -> std::io::Result<Option<File>> {
    use std::os::fd::AsRawFd;
    let f = File::open(dir)?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Removes the staging directories of builds in `out_dir` that died without cleaning up
/// (unlocked ones); returns how many went. Errors only warn: they never fail a build.
fn remove_stale(out_dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(out_dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) || !e.path().is_dir() {
            continue;
        }
        let path = e.path();
        match lock_dir(&path) {
            Ok(Some(_held)) => match std::fs::remove_dir_all(&path) {
                Ok(()) => removed += 1,
                Err(err) => {
                    tracing::warn!(dir = %path.display(), %err, "cannot remove a stale staging directory")
                }
            },
            Ok(None) => {} // a build running now
            Err(err) => {
                tracing::warn!(dir = %path.display(), %err, "cannot check a staging directory")
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %out_dir.display(), "removed staging directories of interrupted builds");
    }
    removed
}

/// Evicts the page cache of an earlier build's outputs (they are about to be replaced). On this
/// project's VM (ext4, `discard`), writing a new 2 GB disk.raw while the previous one's pages
/// are cached took 3.3-5.2 s in the erofs stage instead of 0.7-1.2 s (`scripts/bench.sh`'s
/// 1.9 GB build: 7.5-9.5 s vs 4.6-4.8 s); `POSIX_FADV_DONTNEED` drops only clean pages and
/// changes no byte. Symlinks are not followed.
fn drop_cached_outputs(out_dir: &Path) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    for n in OUTPUTS {
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(out_dir.join(n))
        else {
            continue;
        };
        if f.metadata().is_ok_and(|m| m.file_type().is_file()) {
            // SAFETY: advice on a descriptor we own; no memory is passed.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

impl Staging {
    pub fn new(out_dir: &Path) -> Result<Self> {
        let created_out_dir = !out_dir.exists();
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("creating output directory {}", out_dir.display()))?;
        // Held until the new staging directory is locked: no cleanup can take it in between.
        let dir_lock = lock_dir_wait(out_dir);
        if !created_out_dir && dir_lock.is_ok() {
            remove_stale(out_dir);
            drop_cached_outputs(out_dir);
        }
        let dir = dir_lock.and_then(|_held| {
            tempfile::Builder::new()
                .prefix(PREFIX)
                .tempdir_in(out_dir)
                .with_context(|| format!("creating a staging directory in {}", out_dir.display()))
                .and_then(|d| {
                    let lock = lock_dir(d.path())
                        .with_context(|| format!("locking {}", d.path().display()))?
                        .context("a fresh staging directory is locked by another process")?;
                    Ok((d, lock))
                })
        });
        match dir {
            Ok((d, lock)) => Ok(Staging {
                out_dir: out_dir.to_path_buf(),
                created_out_dir,
                dir: Some(d),
                _lock: lock,
            }),
            Err(e) => {
                if created_out_dir {
                    let _ = std::fs::remove_dir(out_dir);
                }
                Err(e)
            }
        }
    }

    fn root(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("staging dir present until commit")
            .path()
    }

    /// Path of a final output inside the staging dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// Scratch space removed with the staging dir.
    pub fn work_dir(&self) -> Result<PathBuf> {
        let w = self.root().join("work");
        std::fs::create_dir_all(&w)?;
        Ok(w)
    }

    /// Writes `v` as pretty JSON; returns the file's sha256 (hex).
    pub fn write_json<T: serde::Serialize>(&self, name: &str, v: &T) -> Result<String> {
        let mut text = serde_json::to_string_pretty(v)?;
        text.push('\n');
        std::fs::write(self.path(name), &text).with_context(|| format!("writing {name}"))?;
        Ok(sha256_hex(text.as_bytes()))
    }

    /// Writes `SHA256SUMS` from the given (name, sha256 hex) pairs, then replaces the outputs
    /// in the output directory with these files (see the module doc), all or nothing.
    pub fn commit(mut self, files: &[(&str, &str)]) -> Result<()> {
        let mut sorted = files.to_vec();
        sorted.sort_unstable();
        let sums: String = sorted.iter().map(|(n, h)| format!("{h}  {n}\n")).collect();
        std::fs::write(self.path("SHA256SUMS"), sums)?;
        let _held = lock_dir_wait(&self.out_dir)?;
        let new: Vec<&str> = files
            .iter()
            .map(|(n, _)| *n)
            .chain(["SHA256SUMS"])
            .collect();
        // Refuse before changing anything: a directory (or anything but a file or symlink)
        // under an output's name.
        for n in OUTPUTS.iter().chain(&new) {
            let to = self.out_dir.join(n);
            if let Ok(m) = std::fs::symlink_metadata(&to) {
                let t = m.file_type();
                anyhow::ensure!(
                    t.is_file() || t.is_symlink(),
                    "{} exists and is not a file; remove it (outputs are replaced, never merged into)",
                    to.display()
                );
            }
        }
        let aside = self.path("previous-outputs");
        std::fs::create_dir(&aside)?;
        let mut moved_aside: Vec<&str> = Vec::new();
        let mut moved_in: Vec<&str> = Vec::new();
        let result = (|| -> Result<()> {
            // SHA256SUMS first: while the set changes, no SHA256SUMS describes it.
            for n in ["SHA256SUMS"].iter().chain(OUTPUTS) {
                if moved_aside.contains(n) {
                    continue;
                }
                let from = self.out_dir.join(n);
                match std::fs::rename(&from, aside.join(n)) {
                    Ok(()) => moved_aside.push(n),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("moving the earlier {} aside", from.display())
                        })
                    }
                }
            }
            for n in &new {
                let to = self.out_dir.join(n);
                std::fs::rename(self.path(n), &to)
                    .with_context(|| format!("moving {n} into {}", self.out_dir.display()))?;
                moved_in.push(n);
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Back to the earlier build's outputs.
            for n in moved_in.iter().rev() {
                let _ = std::fs::rename(self.out_dir.join(n), self.path(n));
            }
            let mut lost = Vec::new();
            for n in &moved_aside {
                if std::fs::rename(aside.join(n), self.out_dir.join(n)).is_err() {
                    lost.push(*n);
                }
            }
            if !lost.is_empty() {
                tracing::error!(files = ?lost, "could not restore the earlier outputs");
            }
            return Err(e);
        }
        self.created_out_dir = false;
        drop(self.dir.take());
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        drop(self.dir.take());
        if self.created_out_dir {
            let _ = std::fs::remove_dir(&self.out_dir);
        }
    }
}

pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut d = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        d.update(&buf[..n]);
    }
    Ok(d.finalize().into())
}

/// SHA-256 of a region of a file.
pub fn sha256_region(r: crate::verity::Region<'_>) -> Result<[u8; 32]> {
    use std::os::unix::fs::FileExt;
    let mut d = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    while pos < r.len {
        let n = buf.len().min((r.len - pos) as usize);
        r.file
            .read_exact_at(&mut buf[..n], r.offset + pos)
            .context("reading back the root")?;
        d.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(d.finalize().into())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn artifact(path: &Path) -> Result<Artifact> {
    Ok(Artifact {
        sha256: hex::encode(sha256_file(path)?),
        size: std::fs::metadata(path)?.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stage(out: &Path, files: &[(&str, &str)]) -> Staging {
        let s = Staging::new(out).unwrap();
        for (n, text) in files {
            std::fs::write(s.path(n), text).unwrap();
        }
        s
    }

    fn earlier_build(out: &Path) {
        std::fs::create_dir_all(out).unwrap();
        for n in OUTPUTS {
            std::fs::write(out.join(n), format!("old {n}")).unwrap();
        }
    }

    fn names(out: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_commit_replaces_the_whole_set_and_keeps_other_files() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        earlier_build(&out);
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let s = stage(&out, &[("disk.raw", "new disk"), ("uki.efi", "new uki")]);
        s.commit(&[("disk.raw", "aa"), ("uki.efi", "bb")]).unwrap();
        // The earlier bundle and manifest no longer match: gone. The user's file stays.
        assert_eq!(
            names(&out),
            ["SHA256SUMS", "disk.raw", "notes.txt", "uki.efi"]
        );
        assert_eq!(
            std::fs::read_to_string(out.join("disk.raw")).unwrap(),
            "new disk"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("SHA256SUMS")).unwrap(),
            "aa  disk.raw\nbb  uki.efi\n"
        );
    }

    #[test]
    fn a_failed_commit_leaves_the_earlier_outputs() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        earlier_build(&out);
        // uki.efi is listed but was never written: its rename fails after disk.raw's.
        let s = stage(&out, &[("disk.raw", "new disk")]);
        let e = s
            .commit(&[("disk.raw", "aa"), ("uki.efi", "bb")])
            .unwrap_err();
        assert!(format!("{e:#}").contains("moving uki.efi"), "{e:#}");
        assert_eq!(names(&out).len(), OUTPUTS.len(), "{:?}", names(&out));
        for n in OUTPUTS {
            assert_eq!(
                std::fs::read_to_string(out.join(n)).unwrap(),
                format!("old {n}")
            );
        }
    }

    #[test]
    fn a_directory_under_an_output_name_is_refused_before_any_change() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        earlier_build(&out);
        std::fs::remove_file(out.join("manifest.sigstore.json")).unwrap();
        std::fs::create_dir(out.join("manifest.sigstore.json")).unwrap();
        let s = stage(&out, &[("disk.raw", "new disk")]);
        let e = s.commit(&[("disk.raw", "aa")]).unwrap_err();
        assert!(
            format!("{e:#}").contains("manifest.sigstore.json exists and is not a file"),
            "{e:#}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("disk.raw")).unwrap(),
            "old disk.raw"
        );
        assert!(out.join("SHA256SUMS").is_file());
    }

    #[test]
    fn commits_and_staging_creation_wait_for_the_output_directory_lock() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        earlier_build(&out);
        let s = stage(&out, &[("disk.raw", "new disk")]);
        // Another build's commit (or staging creation) in progress.
        let held = lock_dir_wait(&out).unwrap();
        let (o1, o2) = (out.clone(), out.clone());
        let commit = std::thread::spawn(move || s.commit(&[("disk.raw", "aa")]));
        let create = std::thread::spawn(move || Staging::new(&o1).map(|_| ()));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            std::fs::read_to_string(o2.join("disk.raw")).unwrap(),
            "old disk.raw"
        );
        let staging_dirs = names(&o2).iter().filter(|n| n.starts_with(PREFIX)).count();
        assert_eq!(
            staging_dirs, 1,
            "only the first build's staging dir exists while locked"
        );
        drop(held);
        commit.join().unwrap().unwrap();
        create.join().unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("disk.raw")).unwrap(),
            "new disk"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("SHA256SUMS")).unwrap(),
            "aa  disk.raw\n"
        );
    }
}
