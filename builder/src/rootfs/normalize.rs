//! Shared normalization for every rootfs source: path checks, implicit parent directories,
//! duplicate handling, hardlink canonicalization, sorting and mtime clamping.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};

use super::tree::{parent_of, path_cmp, Entry, Kind};

/// Turns a path from an archive or directory walk into our relative form, refusing `..`,
/// NUL, over-long or non-UTF-8 components. `./a//b/` → `a/b`; `/etc` → `etc`.
pub fn clean_path(raw: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(raw).map_err(|_| {
        anyhow::anyhow!("name is not valid UTF-8 ({})", String::from_utf8_lossy(raw))
    })?;
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => continue,
            ".." => bail!("path `{s}` contains `..`; refusing an entry that could escape the root"),
            c if c.len() > 255 => bail!("path `{s}` has a component longer than 255 bytes"),
            c if c.contains('\0') => bail!("path `{s}` contains NUL"),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Collects entries in source order, then [`Builder::finish`] produces the sorted, checked list.
#[derive(Debug, Default)]
pub struct Builder {
    /// path → entry; later duplicates of the same kind replace earlier ones (tar semantics).
    /// Byte order of the keys keeps the descendants of `p` contiguous (`p/` ≤ key < `p0`).
    entries: BTreeMap<String, Entry>,
}

impl Builder {
    pub fn add(&mut self, e: Entry) -> Result<()> {
        if let Some(old) = self.entries.get(&e.path) {
            let same = std::mem::discriminant(&old.kind) == std::mem::discriminant(&e.kind);
            if !(same || is_fileish(&old.kind) && is_fileish(&e.kind)) {
                bail!(
                    "`/{}` appears twice with different types ({} then {})",
                    e.path,
                    kind_name(&old.kind),
                    kind_name(&e.kind)
                );
            }
        }
        self.entries.insert(e.path.clone(), e);
        Ok(())
    }

    /// The entry collected at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Adds `e` with layer semantics: an entry of another kind at the same path is removed
    /// first (with everything below it); a directory over a directory keeps its children.
    pub fn replace(&mut self, e: Entry) {
        let same_dir = e.kind == Kind::Dir
            && self
                .entries
                .get(&e.path)
                .is_some_and(|old| old.kind == Kind::Dir);
        if !same_dir {
            self.remove(&e.path);
        }
        self.entries.insert(e.path.clone(), e);
    }

    /// Removes `path` and everything below it; returns how many entries went.
    pub fn remove(&mut self, path: &str) -> usize {
        let gone = usize::from(self.entries.remove(path).is_some());
        gone + self.clear_dir(path)
    }

    /// Removes everything below `path` (the entry itself stays); returns how many went.
    pub fn clear_dir(&mut self, path: &str) -> usize {
        let below: Vec<String> = if path.is_empty() {
            self.entries
                .keys()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect()
        } else {
            let (lo, hi) = (format!("{path}/"), format!("{path}0"));
            self.entries.range(lo..hi).map(|(k, _)| k.clone()).collect()
        };
        for k in &below {
            self.entries.remove(k);
        }
        below.len()
    }

    /// Sorts, adds missing parents (0755 root:root at `epoch`), clamps mtimes to `epoch`,
    /// checks parents are directories and makes every hardlink point at the first name of its
    /// file in sorted order.
    pub fn finish(mut self, epoch: u64) -> Result<Vec<Entry>> {
        // Only the missing parents are collected (not a copy of every path: a tar may have
        // millions of entries).
        let mut missing: BTreeSet<String> = BTreeSet::new();
        for p in self.entries.keys() {
            let mut cur = p.as_str();
            while let Some(parent) = parent_of(cur) {
                if self.entries.contains_key(parent) || !missing.insert(parent.to_string()) {
                    break;
                }
                cur = parent;
            }
        }
        for parent in missing {
            let dir = implicit_dir(&parent, epoch);
            self.entries.insert(parent, dir);
        }
        self.entries
            .entry(String::new())
            .or_insert_with(|| implicit_dir("", epoch));
        let mut list: Vec<Entry> = self.entries.into_values().collect();
        list.sort_by(|a, b| path_cmp(&a.path, &b.path));
        for e in &mut list {
            e.mtime = e.mtime.min(epoch);
            e.xattrs.sort();
            e.xattrs.dedup_by(|a, b| a.name == b.name);
        }
        check_parents(&list)?;
        canonical_hardlinks(&mut list)?;
        Ok(list)
    }
}

fn is_fileish(k: &Kind) -> bool {
    matches!(k, Kind::File { .. } | Kind::Hardlink { .. })
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Dir => "directory",
        Kind::File { .. } => "file",
        Kind::Symlink { .. } => "symlink",
        Kind::Hardlink { .. } => "hardlink",
        Kind::CharDev { .. } => "char device",
        Kind::BlockDev { .. } => "block device",
        Kind::Fifo => "fifo",
        Kind::Socket => "socket",
    }
}

fn implicit_dir(path: &str, epoch: u64) -> Entry {
    Entry {
        path: path.to_string(),
        kind: Kind::Dir,
        perm: 0o755,
        uid: 0,
        gid: 0,
        mtime: epoch,
        xattrs: vec![],
    }
}

/// `list` is sorted by [`path_cmp`], so a parent is found by binary search (no index of
/// every path).
fn check_parents(list: &[Entry]) -> Result<()> {
    for e in list {
        if let Some(parent) = e.parent() {
            let found = list
                .binary_search_by(|x| path_cmp(&x.path, parent))
                .map(|i| &list[i].kind);
            match found {
                Ok(Kind::Dir) => {}
                Ok(k) => bail!(
                    "`/{}` is inside `/{parent}`, which is a {} — refusing (an entry under a symlink could write outside the root)",
                    e.path,
                    kind_name(k)
                ),
                Err(_) => bail!("internal: parent of `/{}` missing", e.path),
            }
        }
    }
    Ok(())
}

/// Resolves hardlink chains and re-points each group at its first name in sorted order, so the
/// tree invariant "hardlink targets are earlier regular files" holds.
fn canonical_hardlinks(list: &mut [Entry]) -> Result<()> {
    // For each hardlink, follow the chain to a regular file (`list` is sorted by
    // [`path_cmp`]: targets are found by binary search).
    let mut group_of: BTreeMap<usize, usize> = BTreeMap::new(); // entry → file entry
    for (i, e) in list.iter().enumerate() {
        let mut cur = i;
        let mut hops = 0;
        while let Kind::Hardlink { target } = &list[cur].kind {
            let t = list
                .binary_search_by(|x| path_cmp(&x.path, target))
                .ok()
                .with_context(|| {
                    format!(
                        "hardlink `/{}` points at `/{target}`, which is not in the rootfs",
                        e.path
                    )
                })?;
            cur = t;
            hops += 1;
            if hops > list.len() {
                bail!("hardlink `/{}` is part of a cycle", e.path);
            }
        }
        if hops > 0 {
            if !matches!(list[cur].kind, Kind::File { .. }) {
                bail!(
                    "hardlink `/{}` points at `/{}`, which is not a regular file",
                    e.path,
                    list[cur].path
                );
            }
            group_of.insert(i, cur);
        }
    }
    // Group members: the file itself plus its links; the smallest index becomes the file.
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (&link, &file) in &group_of {
        groups.entry(file).or_insert_with(|| vec![file]).push(link);
    }
    for (file, mut members) in groups {
        members.sort_unstable();
        let first = members[0];
        if first != file {
            // Move the file's content and metadata to the first name.
            let content = list[file].clone();
            let first_path = list[first].path.clone();
            list[first] = Entry {
                path: first_path,
                ..content
            };
        }
        let target = list[first].path.clone();
        for &m in &members[1..] {
            list[m].kind = Kind::Hardlink {
                target: target.clone(),
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::DataRef;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::File {
                size: 1,
                data: DataRef(0),
            },
            perm: 0o644,
            uid: 1,
            gid: 2,
            mtime: 99,
            xattrs: vec![],
        }
    }

    #[test]
    fn clean_path_table() {
        for (raw, want) in [
            ("./a//b/", Some("a/b")),
            ("/etc/x", Some("etc/x")),
            (".", Some("")),
            ("a/../b", None),
            ("../x", None),
        ] {
            assert_eq!(clean_path(raw.as_bytes()).ok().as_deref(), want, "{raw}");
        }
        assert!(clean_path(&[0xff, b'a']).is_err());
        assert!(clean_path("a".repeat(256).as_bytes()).is_err());
    }

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut b = Builder::default();
        b.add(file("usr/bin/x")).unwrap();
        b.add(file("a")).unwrap();
        let l = b.finish(50).unwrap();
        let paths: Vec<_> = l.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["", "a", "usr", "usr/bin", "usr/bin/x"]);
        assert!(l.iter().all(|e| e.mtime <= 50));
    }

    #[test]
    fn entry_under_symlink_is_refused() {
        let mut b = Builder::default();
        b.add(Entry {
            kind: Kind::Symlink {
                target: b"/tmp".to_vec(),
            },
            ..file("lib")
        })
        .unwrap();
        b.add(file("lib/evil")).unwrap();
        let e = b.finish(0).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
    }

    #[test]
    fn hardlinks_point_at_first_sorted_name() {
        let mut b = Builder::default();
        b.add(file("z/orig")).unwrap();
        b.add(Entry {
            kind: Kind::Hardlink {
                target: "z/orig".into(),
            },
            ..file("a/link")
        })
        .unwrap();
        b.add(Entry {
            kind: Kind::Hardlink {
                target: "a/link".into(),
            },
            ..file("m/link2")
        })
        .unwrap();
        let l = b.finish(0).unwrap();
        let get = |p: &str| l.iter().find(|e| e.path == p).unwrap().kind.clone();
        assert!(matches!(get("a/link"), Kind::File { .. }));
        assert_eq!(
            get("z/orig"),
            Kind::Hardlink {
                target: "a/link".into()
            }
        );
        assert_eq!(
            get("m/link2"),
            Kind::Hardlink {
                target: "a/link".into()
            }
        );
    }

    #[test]
    fn dangling_hardlink_and_type_clash_are_refused() {
        let mut b = Builder::default();
        b.add(Entry {
            kind: Kind::Hardlink {
                target: "nope".into(),
            },
            ..file("l")
        })
        .unwrap();
        assert!(b
            .finish(0)
            .unwrap_err()
            .to_string()
            .contains("not in the rootfs"));
        let mut b = Builder::default();
        b.add(file("x")).unwrap();
        assert!(b
            .add(Entry {
                kind: Kind::Dir,
                ..file("x")
            })
            .is_err());
    }

    #[test]
    fn remove_clear_and_replace_keep_siblings() {
        let mut b = Builder::default();
        for p in ["a", "a/x", "a/y/z", "a-b", "a0", "ab"] {
            b.add(Entry {
                kind: Kind::Dir,
                ..file(p)
            })
            .unwrap();
        }
        assert_eq!(b.clear_dir("a"), 2, "a/x and a/y/z (a/y is implicit)");
        assert!(b.get("a").is_some() && b.get("a-b").is_some() && b.get("a0").is_some());
        assert_eq!(b.remove("a"), 1);
        b.replace(file("ab/f"));
        b.replace(file("ab")); // dir → file drops ab/f
        assert!(b.get("ab/f").is_none());
        b.replace(Entry {
            kind: Kind::Dir,
            perm: 0o700,
            ..file("a0")
        });
        let l = b.finish(0).unwrap();
        let paths: Vec<_> = l.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["", "a-b", "a0", "ab"]);
        assert_eq!(l[2].perm, 0o700);
        let mut b = Builder::default();
        b.add(file("x/y")).unwrap();
        assert_eq!(b.clear_dir(""), 1);
    }
}
