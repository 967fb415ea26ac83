//! Staged outputs: everything is written inside `DIR/.nodeimg-staging-*` and renamed into
//! `DIR` at the end; on failure the staging dir (and `DIR`, if this build created it) vanish.

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
}

impl Staging {
    pub fn new(out_dir: &Path) -> Result<Self> {
        let created_out_dir = !out_dir.exists();
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("creating output directory {}", out_dir.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(".nodeimg-staging-")
            .tempdir_in(out_dir)
            .with_context(|| format!("creating a staging directory in {}", out_dir.display()));
        match dir {
            Ok(d) => Ok(Staging {
                out_dir: out_dir.to_path_buf(),
                created_out_dir,
                dir: Some(d),
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
