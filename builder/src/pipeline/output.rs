//! Staged outputs: everything is written inside `DIR/.nodeimg-staging-*` and renamed into
//! `DIR` at the end; on failure the staging dir (and `DIR`, if this build created it) vanish.
//!
//! A build killed with SIGKILL cannot clean up, so each build holds an exclusive `flock` on its
//! staging directory, and the next build in `DIR` removes every `.nodeimg-staging-*` whose lock
//! it can take (its owner is gone; a concurrent build's stays). `SHA256SUMS` is removed before
//! the new files are renamed in and written last, so when it exists it lists the files beside
//! it — a build killed between two renames leaves no `SHA256SUMS` that lies.

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

impl Staging {
    pub fn new(out_dir: &Path) -> Result<Self> {
        let created_out_dir = !out_dir.exists();
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("creating output directory {}", out_dir.display()))?;
        if !created_out_dir {
            remove_stale(out_dir);
        }
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(out_dir)
            .with_context(|| format!("creating a staging directory in {}", out_dir.display()))
            .and_then(|d| {
                let lock = lock_dir(d.path())
                    .with_context(|| format!("locking {}", d.path().display()))?
                    .context("a fresh staging directory is locked by another process")?;
                Ok((d, lock))
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

    /// Writes `SHA256SUMS` from the given (name, sha256 hex) pairs, then renames each file
    /// (and SHA256SUMS, last) into the output directory.
    pub fn commit(mut self, files: &[(&str, &str)]) -> Result<()> {
        let mut sorted = files.to_vec();
        sorted.sort_unstable();
        let sums: String = sorted.iter().map(|(n, h)| format!("{h}  {n}\n")).collect();
        std::fs::write(self.path("SHA256SUMS"), sums)?;
        let old_sums = self.out_dir.join("SHA256SUMS");
        match std::fs::remove_file(&old_sums) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", old_sums.display()))
            }
            _ => {}
        }
        for n in files.iter().map(|(n, _)| n).chain(&["SHA256SUMS"]) {
            let to = self.out_dir.join(n);
            std::fs::rename(self.path(n), &to)
                .with_context(|| format!("moving {n} into {}", self.out_dir.display()))?;
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
