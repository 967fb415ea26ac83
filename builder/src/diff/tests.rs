//! Comparator tests on in-memory inputs: erofs trees written by our writer, JSON documents,
//! GPT tables, byte streams, and the human rendering.

use std::io::{self, Cursor, Read};

use serde_json::json;

use super::*;
use crate::disk::{GptTable, PartInfo, TYPE_ESP, TYPE_ROOT_X86_64};
use crate::erofs::read::Image;
use crate::rootfs::{path_cmp, ContentStore, DataRef, Entry, Kind, Tree, Xattr};

#[derive(Debug)]
struct Mem(Vec<Vec<u8>>);

impl ContentStore for Mem {
    fn open(&self, d: DataRef) -> io::Result<Box<dyn Read + '_>> {
        let b = self.0.get(d.0 as usize).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(b.as_slice()))
    }
}

fn entry(path: &str, kind: Kind) -> Entry {
    Entry {
        path: path.into(),
        perm: 0o644,
        kind,
        uid: 0,
        gid: 0,
        mtime: 100,
        xattrs: vec![],
    }
}

/// `usr/bin/foo` holds `foo`; `edit` changes the tree before it is written.
fn image(edit: impl FnOnce(&mut Vec<Entry>, &mut Vec<Vec<u8>>)) -> Vec<u8> {
    let mut blobs = vec![b"foo-1".to_vec(), b"cfg".to_vec()];
    let file = |path: &str, i: usize, len: usize| {
        entry(
            path,
            Kind::File {
                size: len as u64,
                data: DataRef(i as u64),
            },
        )
    };
    let mut es = vec![
        entry("", Kind::Dir),
        entry("etc", Kind::Dir),
        file("etc/cfg", 1, 3),
        entry(
            "etc/link",
            Kind::Symlink {
                target: b"cfg".to_vec(),
            },
        ),
        entry("usr", Kind::Dir),
        entry("usr/bin", Kind::Dir),
        file("usr/bin/foo", 0, 5),
        entry(
            "usr/bin/foo2",
            Kind::Hardlink {
                target: "usr/bin/foo".into(),
            },
        ),
    ];
    edit(&mut es, &mut blobs);
    es.sort_by(|a, b| path_cmp(&a.path, &b.path));
    let tree = Tree {
        entries: es,
        store: Box::new(Mem(blobs)),
    };
    let mut out = Cursor::new(Vec::new());
    let opts = crate::erofs::Options {
        uuid: [7; 16],
        build_time: 100,
        volume_name: "root".into(),
    };
    crate::erofs::write(&tree, &mut out, &opts).unwrap();
    out.into_inner()
}

fn tree_diffs(a: &[u8], b: &[u8]) -> Vec<String> {
    let sa = tree::summaries(&Image::open(a).unwrap()).unwrap();
    let sb = tree::summaries(&Image::open(b).unwrap()).unwrap();
    let mut d = Diffs::new(0);
    tree::diff_trees(&sa, &sb, &mut d);
    d.list.iter().map(ToString::to_string).collect()
}

fn find(e: &mut [Entry], p: &str) -> usize {
    e.iter().position(|x| x.path == p).unwrap()
}

#[test]
fn erofs_tree_differences_name_the_path() {
    let base = image(|_, _| {});
    assert!(tree_diffs(&base, &base).is_empty());
    type Edit = fn(&mut Vec<Entry>, &mut Vec<Vec<u8>>);
    let table: [(Edit, &str); 8] = [
        (
            |_, b| b[0] = b"foo-2".to_vec(),
            "/usr/bin/foo: content differs (sha256 ",
        ),
        (
            |e, _| {
                let i = find(e, "etc/cfg");
                e[i].perm = 0o600
            },
            "/etc/cfg: mode differs (0644 vs 0600)",
        ),
        (
            |e, _| {
                let i = find(e, "etc/cfg");
                e[i].uid = 5
            },
            "/etc/cfg: owner differs (0:0 vs 5:0)",
        ),
        (
            |e, _| {
                let i = find(e, "etc/cfg");
                e[i].mtime = 99
            },
            "/etc/cfg: mtime differs (100 vs 99)",
        ),
        (
            |e, _| e.push(entry("etc/new", Kind::Fifo)),
            "/etc/new: only in B (fifo)",
        ),
        (
            |e, _| {
                let i = find(e, "etc/link");
                e.remove(i);
            },
            "/etc/link: only in A (symlink)",
        ),
        (
            |e, _| {
                let i = find(e, "etc/link");
                e[i].kind = Kind::Symlink {
                    target: b"x".to_vec(),
                }
            },
            "/etc/link: symlink target differs (cfg vs x)",
        ),
        (
            |e, _| {
                let i = find(e, "etc/cfg");
                e[i].xattrs = vec![Xattr {
                    name: b"user.k".to_vec(),
                    value: b"v".to_vec(),
                }]
            },
            "/etc/cfg: xattrs differs (none vs user.k=76)",
        ),
    ];
    for (edit, want) in table {
        let got = tree_diffs(&base, &image(edit));
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "{want}\ngot {got:?}"
        );
    }
    let unlinked = image(|e, _| {
        let i = find(e, "usr/bin/foo2");
        e[i].kind = Kind::File {
            size: 5,
            data: DataRef(0),
        };
    });
    let got = tree_diffs(&base, &unlinked);
    assert!(
        got.iter().any(|g| g.contains(
            "/usr/bin/foo2: links differs (2 links, hardlink of /usr/bin/foo vs 1 links)"
        )),
        "{got:?}"
    );
}

#[test]
fn json_differences_by_path() {
    let a = json!({"verity": {"root_hash": "aa", "salt": "00"}, "parts": [1, 2], "x": true});
    let b = json!({"verity": {"root_hash": "bb", "salt": "00"}, "parts": [1], "y": 1});
    let mut d = Diffs::new(0);
    manifest::diff_values("", &a, &b, &mut d);
    let got: Vec<String> = d.list.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "parts[1]: only in A (2)",
            "verity.root_hash: value differs (aa vs bb)",
            "x: only in A (true)",
            "y: only in B (1)",
        ]
    );
}

fn part(n: u32, t: [u8; 16], uuid: u8, offset: u64) -> PartInfo {
    PartInfo {
        number: n,
        type_guid: t,
        unique_guid: [uuid; 16],
        name: format!("p{n}"),
        first_lba: offset / 512,
        last_lba: offset / 512 + 7,
        attrs: 0,
        offset,
        size: 4096,
    }
}

#[test]
fn gpt_differences() {
    let a = GptTable {
        disk_guid: [1; 16],
        first_usable_lba: 34,
        last_usable_lba: 1000,
        backup_lba: 1033,
        partitions: vec![
            part(1, TYPE_ESP, 1, 1 << 20),
            part(2, TYPE_ROOT_X86_64, 2, 2 << 20),
        ],
        measured: Vec::new(),
    };
    let mut b = a.clone();
    assert_eq!(
        disk::gpt(&a, &b, &Options { limit: 0 }).status,
        Status::Identical
    );
    b.partitions[1].unique_guid = [3; 16];
    b.partitions.push(part(3, TYPE_ESP, 4, 3 << 20));
    let c = disk::gpt(&a, &b, &Options { limit: 0 });
    let got: Vec<String> = c.differences.iter().map(ToString::to_string).collect();
    assert_eq!(c.count, 2);
    assert!(
        got[0].starts_with("partition 2 (root-x86-64): UUID differs (02020202-"),
        "{got:?}"
    );
    assert_eq!(got[1], "partition 3: only in B (esp)");
}

#[test]
fn first_difference_table() {
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut changed = big.clone();
    changed[150_001] ^= 1;
    let table: [(&[u8], &[u8], Option<u64>); 5] = [
        (b"", b"", None),
        (b"abc", b"abc", None),
        (b"abc", b"abd", Some(2)),
        (b"abc", b"ab", Some(2)),
        (&big, &changed, Some(150_001)),
    ];
    for (a, b, want) in table {
        assert_eq!(first_difference(&mut &a[..], &mut &b[..]).unwrap(), want);
    }
}

#[test]
fn limit_keeps_the_count_and_render_says_so() {
    let mut d = Diffs::new(2);
    for i in 0..5 {
        d.push(
            &format!("/f{i}"),
            "content",
            Some("a".into()),
            Some("b".into()),
        );
    }
    let r = Report {
        a: "A".into(),
        b: "B".into(),
        identical: false,
        components: vec![
            Diffs::new(2).into_component("gpt"),
            d.into_component("erofs"),
        ],
    };
    assert_eq!(
        render(&r),
        "gpt: identical\nerofs: 5 differences\n  erofs: /f0: content differs (a vs b)\n  \
         erofs: /f1: content differs (a vs b)\n  … and 3 more\ndifferent\n"
    );
    let long = Difference {
        item: ".cmdline".into(),
        field: "content".into(),
        a: Some("x".repeat(200)),
        b: Some("y".into()),
    };
    assert!(long.to_string().contains("…"), "long values are cut");
}
