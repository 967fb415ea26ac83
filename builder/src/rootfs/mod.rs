//! Root filesystem sources (tar, directory) → one normalized, sorted [`Tree`]: paths checked
//! (no `..`, nothing under a symlink), parents present, mtimes clamped to SOURCE_DATE_EPOCH,
//! hardlinks canonical. Contents are never loaded; the tree's store opens them on demand.

pub mod debcache;
mod debian;
mod dir;
mod normalize;
mod oci;
mod store;
mod tarball;
mod tree;

use std::path::Path;

use anyhow::Result;
use image_config::RootfsSource;

pub use debcache::DebCache;

pub use tree::{parent_of, path_cmp, ContentStore, DataRef, Entry, Kind, Tree, Xattr};

/// A loaded rootfs and what identifies its input.
#[derive(Debug)]
pub struct Loaded {
    pub tree: Tree,
    /// SHA-256 of the tar file, or of the selected OCI image manifest blob (the image's
    /// digest); `None` for a directory (its identity is the erofs image). For an uncompressed
    /// tar it may still be computing on another core ([`InputDigest::wait`]).
    pub input_sha256: Option<InputDigest>,
    /// Installed Debian packages → versions, for Debian sources.
    pub packages: Option<std::collections::BTreeMap<String, String>>,
}

/// A digest that is known, or being computed on another thread (an uncompressed tar is hashed
/// while the build goes on: the erofs stage copies from the same page cache on the other core).
#[derive(Debug)]
pub enum InputDigest {
    Ready([u8; 32]),
    Hashing {
        path: std::path::PathBuf,
        thread: std::thread::JoinHandle<std::io::Result<[u8; 32]>>,
    },
}

impl InputDigest {
    /// The digest, waiting for the hashing thread if needed.
    pub fn wait(self) -> Result<[u8; 32]> {
        match self {
            InputDigest::Ready(d) => Ok(d),
            InputDigest::Hashing { path, thread } => thread
                .join()
                .map_err(|_| anyhow::anyhow!("the thread hashing {} panicked", path.display()))?
                .map_err(|e| anyhow::anyhow!("hashing rootfs tar {}: {e}", path.display())),
        }
    }
}

/// Reads the configured source. `work_dir` may receive a spool of decompressed contents.
pub fn load(
    source: &RootfsSource,
    epoch: u64,
    work_dir: &Path,
    cache: Option<&DebCache>,
) -> Result<Loaded> {
    match source {
        RootfsSource::Tar(p) => {
            let (tree, digest) = tarball::read(p, epoch, work_dir, None)?;
            Ok(Loaded {
                tree,
                input_sha256: Some(digest),
                packages: None,
            })
        }
        RootfsSource::Directory(p) => Ok(Loaded {
            tree: dir::read(p, epoch)?,
            input_sha256: None,
            packages: None,
        }),
        RootfsSource::Debian(d) => {
            // With the cache, the tar's digest was computed (stored) or verified (reused) there.
            let (tar, known) = debian::bootstrap(d, epoch, work_dir, cache)?;
            let (tree, digest) = tarball::read(&tar, epoch, work_dir, known)?;
            let packages = Some(debian::installed_packages(&tree)?);
            Ok(Loaded {
                tree,
                input_sha256: Some(digest),
                packages,
            })
        }
        RootfsSource::Oci { dir, tag } => {
            let (tree, digest) = oci::read(dir, tag.as_deref(), epoch, work_dir)?;
            Ok(Loaded {
                tree,
                input_sha256: Some(InputDigest::Ready(digest)),
                packages: None,
            })
        }
    }
}

impl Tree {
    /// The entry at `path` (relative, no leading `/`).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| path_cmp(&e.path, path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Reads a whole regular file (following hardlinks, not symlinks) into memory.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        Ok(self
            .read_file_capped(path, u64::MAX)?
            .unwrap_or_else(|| unreachable!("no file holds more than u64::MAX bytes")))
    }

    /// Like [`Tree::read_file`], but `None` when the file is longer than `cap` bytes (at most
    /// `cap + 1` are read).
    pub fn read_file_capped(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        use anyhow::Context;
        use std::io::Read;
        let e = self
            .get(path)
            .with_context(|| format!("`/{path}` is not in the rootfs"))?;
        let data = match &e.kind {
            Kind::File { data, .. } => *data,
            Kind::Hardlink { target } => return self.read_file_capped(target, cap),
            _ => anyhow::bail!("`/{path}` in the rootfs is not a regular file"),
        };
        let mut buf = Vec::new();
        self.store
            .open(data)?
            .take(cap.saturating_add(1))
            .read_to_end(&mut buf)
            .with_context(|| format!("reading `/{path}` from the rootfs"))?;
        Ok((buf.len() as u64 <= cap).then_some(buf))
    }

    /// Resolves symlinks in every component of `path` inside the tree (absolute targets are
    /// relative to the tree's root, `..` is clamped at the root) and returns the path of the
    /// final entry, which must exist; at most 40 symlinks are followed.
    pub fn resolve(&self, path: &str) -> Option<String> {
        let mut pending: Vec<String> = lexical_clean(path)
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut cur = String::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            let next = if cur.is_empty() {
                c
            } else {
                format!("{cur}/{c}")
            };
            match &self.get(&next)?.kind {
                Kind::Symlink { target } => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    let t = std::str::from_utf8(target).ok()?;
                    let joined = if t.starts_with('/') {
                        t.to_string()
                    } else {
                        format!("{cur}/{t}")
                    };
                    let rest: Vec<String> = pending.drain(..).rev().collect();
                    let full = format!("{}/{}", lexical_clean(&joined), rest.join("/"));
                    pending = lexical_clean(&full)
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(String::from)
                        .collect();
                    cur = String::new();
                }
                _ => cur = next,
            }
        }
        Some(cur)
    }
}

/// Cleans `a/./b/../c` → `a/c` lexically, clamping `..` at the root.
fn lexical_clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests;
