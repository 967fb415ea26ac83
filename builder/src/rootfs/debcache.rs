//! The cache of Debian inputs (`--cache-dir`, default `$XDG_CACHE_HOME/nodeimg`), two layers:
//!
//! - `debs/`: the `.deb` files mmdebstrap downloaded, each with a `NAME.deb.sha256` sidecar
//!   written when it was stored (apt had checked it against the signed index when downloading).
//!   A build hands mmdebstrap only entries that still match their sidecar (hard links in a
//!   private seed directory, for `sync-in`); a truncated or altered entry is deleted and apt
//!   fetches it again.
//!   Each build marks the entries its resolved package set needs (their modification time
//!   becomes "now"); an entry no build has needed for [`DEB_UNUSED_SECS`] is removed, so
//!   superseded versions do not pile up.
//! - `rootfs/`: whole bootstrapped rootfs tars, keyed by everything that decides their bytes
//!   (mmdebstrap's arguments, the host tool versions, SOURCE_DATE_EPOCH and the exact package
//!   set apt resolves against the mirror today, see `debian::cache_key`), each with a
//!   `KEY.json` sidecar holding its SHA-256 and size, checked before use.
//!
//! Every entry is written under a temporary name in the cache and renamed into place, so
//! concurrent builds and killed builds never expose a partial entry. The cache is an
//! accelerator only: if it cannot be used the build goes on without it (with a warning), and
//! its contents never change an output byte.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// How many rootfs tars to keep (least recently used ones go first).
const ROOTFS_KEEP: usize = 3;
/// Temporary directories older than this are leftovers of killed builds.
const STALE_TMP_SECS: u64 = 24 * 3600;
/// A cached `.deb` no build has needed for this long is removed (its modification time is
/// set to "now" whenever a build's resolved package set contains it).
pub const DEB_UNUSED_SECS: u64 = 30 * 24 * 3600;

/// An opened cache directory.
#[derive(Debug)]
pub struct DebCache {
    dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct RootfsEntry {
    sha256: String,
    size: u64,
}

impl DebCache {
    /// Creates (if needed) and opens the cache at `dir`.
    pub fn open(dir: &Path) -> Result<DebCache> {
        for sub in ["debs", "rootfs", "tmp"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let c = DebCache {
            dir: dir.to_path_buf(),
        };
        c.remove_stale_tmp();
        Ok(c)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh private directory inside the cache (same filesystem: renames and hard links work).
    pub fn tmp_dir(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(self.dir.join("tmp"))
            .with_context(|| format!("creating a directory in {}", self.dir.join("tmp").display()))
    }

    /// Hard-links every cached `.deb` that matches its sidecar into `seed`; deletes the others.
    /// Returns (used, removed).
    pub fn seed_debs(&self, seed: &Path) -> Result<(usize, usize)> {
        let debs = self.dir.join("debs");
        let (mut used, mut removed) = (0, 0);
        for name in sorted_names(&debs)? {
            if !name.ends_with(".deb") {
                continue;
            }
            let path = debs.join(&name);
            let link = seed.join(&name);
            fs::hard_link(&path, &link)
                .with_context(|| format!("linking {} into {}", path.display(), seed.display()))?;
            // Checked through the link: the bytes apt will see.
            let want = fs::read_to_string(debs.join(format!("{name}.sha256"))).ok();
            let ok = match want {
                Some(w) => sha256_file(&link).is_ok_and(|(h, _)| h == w.trim()),
                None => false,
            };
            if ok {
                used += 1;
            } else {
                tracing::warn!(
                    "cache: {} does not match its recorded SHA-256 (truncated or altered); removed, it will be downloaded again",
                    path.display()
                );
                let _ = fs::remove_file(&link);
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(debs.join(format!("{name}.sha256")));
                removed += 1;
            }
        }
        Ok((used, removed))
    }

    /// Moves the `.deb` files in `from` (mmdebstrap's `sync-out` of the archives apt verified)
    /// into the cache, each with its sidecar; returns how many were new.
    pub fn store_debs(&self, from: &Path) -> Result<usize> {
        let debs = self.dir.join("debs");
        let mut added = 0;
        for name in sorted_names(from)? {
            let src = from.join(&name);
            if !name.ends_with(".deb") || !fs::symlink_metadata(&src)?.is_file() {
                continue;
            }
            let sidecar = debs.join(format!("{name}.sha256"));
            if debs.join(&name).is_file() && sidecar.is_file() {
                continue;
            }
            let (hash, _) = sha256_file(&src)?;
            // The deb first, then its sidecar: a deb without one is never used.
            fs::rename(&src, debs.join(&name))
                .with_context(|| format!("moving {} into {}", src.display(), debs.display()))?;
            // apt keeps the server's Last-Modified time; the cache counts from storing.
            touch(&debs.join(&name));
            write_atomic(&sidecar, format!("{hash}\n").as_bytes())?;
            added += 1;
        }
        Ok(added)
    }

    /// Marks the cached `.deb` files that `resolved` (`name version arch` lines, as
    /// `debian::resolved_packages` gives them) needs as used now, then removes entries no build
    /// has needed for [`DEB_UNUSED_SECS`]. Returns (marked, removed).
    pub fn mark_and_prune_debs(&self, resolved: &str) -> (usize, usize) {
        let wanted: std::collections::BTreeSet<(&str, &str)> = resolved
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?, w.next()?))
            })
            .collect();
        let debs = self.dir.join("debs");
        let Ok(names) = sorted_names(&debs) else {
            return (0, 0);
        };
        let (mut marked, mut removed) = (0, 0);
        for name in names.iter().filter(|n| n.ends_with(".deb")) {
            let path = debs.join(name);
            // NAME_VERSION_ARCH.deb, with the epoch's ':' escaped as %3a.
            let stem = name
                .trim_end_matches(".deb")
                .replace("%3a", ":")
                .replace("%3A", ":");
            let mut parts = stem.splitn(3, '_');
            let key = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if wanted.contains(&key) {
                touch(&path);
                marked += 1;
                continue;
            }
            let unused = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > DEB_UNUSED_SECS);
            if unused {
                let _ = fs::remove_file(debs.join(format!("{name}.sha256")));
                let _ = fs::remove_file(&path);
                removed += 1;
            }
        }
        (marked, removed)
    }

    /// If the cache holds the rootfs tar for `key` and it matches its sidecar, puts it at `dest`
    /// (hard link, else copy) and returns its SHA-256 (checked on `dest`). A mismatching entry is
    /// deleted.
    pub fn take_rootfs(&self, key: &str, dest: &Path) -> Result<Option<[u8; 32]>> {
        let (tar, meta) = self.rootfs_paths(key);
        let Ok(text) = fs::read_to_string(&meta) else {
            return Ok(None);
        };
        let entry: Option<RootfsEntry> = serde_json::from_str(&text).ok();
        if tar.is_file() {
            link_or_copy(&tar, dest)?;
            if let Some(e) = entry {
                let digest = sha256_file(dest)
                    .ok()
                    .filter(|(h, n)| *h == e.sha256 && *n == e.size)
                    .and_then(|(h, _)| hex::decode(h).ok()?.try_into().ok());
                if let Some(d) = digest {
                    // Recently used: survives the eviction of older entries.
                    let _ =
                        File::open(&tar).and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    return Ok(Some(d));
                }
            }
            fs::remove_file(dest).with_context(|| format!("removing {}", dest.display()))?;
        }
        tracing::warn!(
            "cache: rootfs {} does not match its recorded SHA-256 and size; removed, bootstrapping again",
            tar.display()
        );
        let _ = fs::remove_file(&tar);
        let _ = fs::remove_file(&meta);
        Ok(None)
    }

    /// Stores `tar` as the rootfs for `key` (hard link, else copy) and evicts old entries;
    /// returns the SHA-256 it recorded.
    pub fn put_rootfs(&self, key: &str, tar: &Path) -> Result<[u8; 32]> {
        let (final_tar, meta) = self.rootfs_paths(key);
        let tmp = self.tmp_dir()?;
        let staged = tmp.path().join("rootfs.tar");
        link_or_copy(tar, &staged)?;
        let (sha256, size) = sha256_file(&staged)?;
        fs::rename(&staged, &final_tar)
            .with_context(|| format!("renaming into {}", final_tar.display()))?;
        let digest = hex::decode(&sha256)
            .ok()
            .and_then(|d| d.try_into().ok())
            .context("the rootfs digest")?;
        write_atomic(&meta, &serde_json::to_vec(&RootfsEntry { sha256, size })?)?;
        self.evict_rootfs();
        Ok(digest)
    }

    fn rootfs_paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.join("rootfs");
        (d.join(format!("{key}.tar")), d.join(format!("{key}.json")))
    }

    fn evict_rootfs(&self) {
        let d = self.dir.join("rootfs");
        let Ok(names) = sorted_names(&d) else { return };
        let mut tars: Vec<(std::time::SystemTime, String)> = names
            .into_iter()
            .filter(|n| n.ends_with(".tar"))
            .filter_map(|n| Some((fs::metadata(d.join(&n)).ok()?.modified().ok()?, n)))
            .collect();
        tars.sort();
        while tars.len() > ROOTFS_KEEP {
            let (_, n) = tars.remove(0);
            let _ = fs::remove_file(d.join(n.replace(".tar", ".json")));
            let _ = fs::remove_file(d.join(&n));
        }
    }

    fn remove_stale_tmp(&self) {
        let d = self.dir.join("tmp");
        let Ok(names) = sorted_names(&d) else { return };
        for n in names {
            let p = d.join(n);
            let old = fs::metadata(&p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > STALE_TMP_SECS);
            if old {
                let _ = fs::remove_dir_all(&p);
            }
        }
    }
}

/// The default cache directory: `$XDG_CACHE_HOME/nodeimg`, else `$HOME/.cache/nodeimg`.
pub fn default_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("nodeimg"))
}

fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        if let Ok(n) = e?.file_name().into_string() {
            names.push(n);
        }
    }
    names.sort();
    Ok(names)
}

/// SHA-256 (hex) and size of a file.
fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let digest = crate::signing::sha256_file(path)?;
    let len = fs::metadata(path)
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len();
    Ok((hex::encode(digest), len))
}

/// Sets a file's modification time to now (best effort: the cache is an accelerator).
fn touch(path: &Path) {
    if let Ok(f) = File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

/// Temporary file + rename, mode 0600 (as the cache's other files).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::outfile::write(path, bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_deb_is_removed_and_a_good_one_seeded() {
        let root = tempfile::tempdir().unwrap();
        let c = DebCache::open(&root.path().join("c")).unwrap();
        let out = tempfile::tempdir().unwrap();
        fs::write(out.path().join("a_1_amd64.deb"), b"package a").unwrap();
        fs::write(out.path().join("b_1_amd64.deb"), b"package b").unwrap();
        fs::write(out.path().join("lock"), b"").unwrap();
        assert_eq!(c.store_debs(out.path()).unwrap(), 2);
        // Truncate one entry, drop the sidecar of nothing: a is bad now.
        fs::write(c.dir().join("debs/a_1_amd64.deb"), b"pack").unwrap();
        let seed = c.tmp_dir().unwrap();
        assert_eq!(c.seed_debs(seed.path()).unwrap(), (1, 1));
        assert!(!seed.path().join("a_1_amd64.deb").exists());
        assert_eq!(
            fs::read(seed.path().join("b_1_amd64.deb")).unwrap(),
            b"package b"
        );
        assert!(!c.dir().join("debs/a_1_amd64.deb").exists());
        assert!(!c.dir().join("debs/a_1_amd64.deb.sha256").exists());
        // A deb without a sidecar (a build killed between the two renames) is not used either.
        fs::write(c.dir().join("debs/c_1_amd64.deb"), b"c").unwrap();
        let seed2 = c.tmp_dir().unwrap();
        assert_eq!(c.seed_debs(seed2.path()).unwrap(), (1, 1));
    }

    #[test]
    fn debs_no_build_needed_for_a_month_are_pruned() {
        let root = tempfile::tempdir().unwrap();
        let c = DebCache::open(&root.path().join("c")).unwrap();
        let out = tempfile::tempdir().unwrap();
        for n in [
            "a_1_amd64.deb",
            "a_2_amd64.deb",
            "b_1%3a2.0-1_amd64.deb",
            "c_1_amd64.deb",
        ] {
            fs::write(out.path().join(n), n).unwrap();
        }
        assert_eq!(c.store_debs(out.path()).unwrap(), 4);
        let debs = c.dir().join("debs");
        let age = |n: &str, days: u64| {
            let t = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
            File::options()
                .append(true)
                .open(debs.join(n))
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        // a 1 and b are old but needed now; a 2 is old and unneeded; c is unneeded but recent.
        age("a_1_amd64.deb", 40);
        age("a_2_amd64.deb", 40);
        age("b_1%3a2.0-1_amd64.deb", 40);
        age("c_1_amd64.deb", 3);
        let resolved = "a 1 amd64\nb 1:2.0-1 amd64\n";
        assert_eq!(c.mark_and_prune_debs(resolved), (2, 1));
        assert!(!debs.join("a_2_amd64.deb").exists());
        assert!(!debs.join("a_2_amd64.deb.sha256").exists());
        for kept in ["a_1_amd64.deb", "b_1%3a2.0-1_amd64.deb", "c_1_amd64.deb"] {
            assert!(debs.join(kept).exists(), "{kept}");
        }
        // Marked entries are young again: a second run with nothing needed removes nothing.
        assert_eq!(c.mark_and_prune_debs(""), (0, 0));
    }

    #[test]
    fn rootfs_entries_are_checked_before_use() {
        let root = tempfile::tempdir().unwrap();
        let c = DebCache::open(&root.path().join("c")).unwrap();
        let tar = root.path().join("r.tar");
        fs::write(&tar, vec![7u8; 10_000]).unwrap();
        c.put_rootfs("k1", &tar).unwrap();
        let dest = root.path().join("got.tar");
        let put = c.take_rootfs("k1", &dest).unwrap();
        assert_eq!(
            put.map(hex::encode),
            Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                std::fs::read(&dest).unwrap()
            )))
        );
        assert_eq!(fs::read(&dest).unwrap(), vec![7u8; 10_000]);
        fs::remove_file(&dest).unwrap();
        assert!(c.take_rootfs("other", &dest).unwrap().is_none());
        // Same size, one byte flipped: refused and removed.
        let mut bad = vec![7u8; 10_000];
        bad[5000] = 8;
        fs::remove_file(c.dir().join("rootfs/k1.tar")).unwrap();
        fs::write(c.dir().join("rootfs/k1.tar"), &bad).unwrap();
        assert!(c.take_rootfs("k1", &dest).unwrap().is_none());
        assert!(!dest.exists());
        assert!(!c.dir().join("rootfs/k1.tar").exists());
    }

    #[test]
    fn only_the_newest_rootfs_entries_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let c = DebCache::open(&root.path().join("c")).unwrap();
        for i in 0..5 {
            let tar = root.path().join(format!("r{i}.tar"));
            fs::write(&tar, format!("tar {i}")).unwrap();
            c.put_rootfs(&format!("k{i}"), &tar).unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            File::open(c.dir().join(format!("rootfs/k{i}.tar")))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let left: Vec<String> = sorted_names(&c.dir().join("rootfs")).unwrap();
        assert_eq!(
            left.iter().filter(|n| n.ends_with(".tar")).count(),
            ROOTFS_KEEP
        );
        assert!(!left.contains(&"k0.tar".to_string()));
    }
}
