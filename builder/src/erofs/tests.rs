//! Unit tests: small in-memory trees written to a `Cursor<Vec<u8>>`, read back with the
//! test reader, and checked with `fsck.erofs` when it is installed.

mod reader;

use std::io::{self, Cursor, Read};

use super::*;
use crate::rootfs::{path_cmp, ContentStore, DataRef, Entry, Kind, Xattr};
use reader::Image;

/// File contents held in memory; `DataRef(i)` is the i-th blob.
#[derive(Debug, Default)]
struct MemStore(Vec<Vec<u8>>);

impl ContentStore for MemStore {
    fn open(&self, data: DataRef) -> io::Result<Box<dyn Read + '_>> {
        let blob = self.0.get(data.0 as usize).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(blob.as_slice()))
    }
}

/// Builds a sorted tree from entries given in any order.
#[derive(Debug, Default)]
struct Builder {
    entries: Vec<Entry>,
    store: MemStore,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder::default();
        b.add("", Kind::Dir);
        b
    }

    fn add(&mut self, path: &str, kind: Kind) -> &mut Entry {
        let perm = if kind == Kind::Dir { 0o755 } else { 0o644 };
        self.entries.push(Entry {
            path: path.into(),
            kind,
            perm,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            xattrs: Vec::new(),
        });
        self.entries.last_mut().unwrap()
    }

    fn file(&mut self, path: &str, content: Vec<u8>) -> &mut Entry {
        let data = DataRef(self.store.0.len() as u64);
        let size = content.len() as u64;
        self.store.0.push(content);
        self.add(path, Kind::File { size, data })
    }

    fn build(mut self) -> Tree {
        self.entries.sort_by(|a, b| path_cmp(&a.path, &b.path));
        Tree {
            entries: self.entries,
            store: Box::new(self.store),
        }
    }
}

fn opts() -> Options {
    Options {
        uuid: *b"0123456789abcdef",
        build_time: 1_700_000_123,
        volume_name: "root".into(),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn xattr(name: &str, value: &[u8]) -> Xattr {
    Xattr {
        name: name.as_bytes().to_vec(),
        value: value.to_vec(),
    }
}

/// A tree with every entry kind and the layout edge cases.
fn sample_tree() -> Tree {
    let mut b = Builder::new();
    b.add("etc", Kind::Dir).perm = 0o1777;
    b.file("etc/empty", vec![]);
    b.file("etc/small", b"hello\n".to_vec()).mtime = 42;
    b.file("etc/block", pattern(4096, 1));
    b.file("etc/tail", pattern(3 * 4096 + 100, 2)).xattrs = vec![xattr("user.k", b"v")];
    b.file("etc/big-tail", pattern(4000, 3)); // tail too big to share a block with others
    b.add(
        "etc/x-hard",
        Kind::Hardlink {
            target: "etc/small".into(),
        },
    );
    let ping = b.file("bin-ping", pattern(5000, 4));
    ping.perm = 0o4755;
    ping.uid = 100_000;
    ping.gid = 65534;
    ping.xattrs = vec![
        xattr("security.capability", &[1; 20]),
        xattr("trusted.t", b"x"),
    ];
    b.add("dev", Kind::Dir);
    b.add("dev/null", Kind::CharDev { major: 1, minor: 3 });
    b.add(
        "dev/sda",
        Kind::BlockDev {
            major: 8,
            minor: 0x12345,
        },
    );
    b.add("dev/fifo", Kind::Fifo);
    b.add("dev/sock", Kind::Socket);
    b.add(
        "link",
        Kind::Symlink {
            target: b"etc/small".to_vec(),
        },
    );
    b.add(
        "longlink",
        Kind::Symlink {
            target: vec![b'x'; 4095],
        },
    );
    b.add("many", Kind::Dir);
    for i in 0..300 {
        b.file(
            &format!("many/file-with-a-longish-name-{i:04}"),
            vec![b'a'; i % 7],
        );
    }
    b.add("-dash", Kind::Dir); // sorts before "." in byte order
    b.build()
}

fn write_image(tree: &Tree) -> (Vec<u8>, Summary) {
    let mut out = Cursor::new(Vec::new());
    let summary = write(tree, &mut out, &opts()).expect("write erofs image");
    (out.into_inner(), summary)
}

#[test]
fn superblock_fields() {
    let tree = sample_tree();
    let (img, summary) = write_image(&tree);
    assert_eq!(img.len() as u64, summary.size);
    assert_eq!(summary.size % 4096, 0);
    assert_eq!(summary.blocks * 4096, summary.size);
    let image = Image(&img);
    let sb = image.sb();
    assert_eq!(sb[0..4], 0xE0F5_E1E2u32.to_le_bytes());
    assert_eq!(sb[12], 12, "blkszbits");
    assert_eq!(image.root_nid(), 36, "root right after the superblock");
    assert_eq!(
        u64::from_le_bytes(sb[16..24].try_into().unwrap()),
        summary.inodes
    );
    assert_eq!(
        u64::from_le_bytes(sb[24..32].try_into().unwrap()),
        1_700_000_123
    );
    assert_eq!(
        u64::from(u32::from_le_bytes(sb[36..40].try_into().unwrap())),
        summary.blocks
    );
    assert_eq!(&sb[48..64], b"0123456789abcdef");
    assert_eq!(&sb[64..80], b"root\0\0\0\0\0\0\0\0\0\0\0\0");
    assert!(sb[80..].iter().all(|&b| b == 0), "no incompat features");
    // One inode per entry except the hardlink.
    assert_eq!(summary.inodes as usize, tree.entries.len() - 1);
    assert!(img[..1024].iter().all(|&b| b == 0));
}

#[test]
fn deterministic() {
    let (a, _) = write_image(&sample_tree());
    let (b, _) = write_image(&sample_tree());
    assert!(a == b, "two writes of the same tree differ");
}

#[test]
fn starts_at_current_position_and_overwrites_garbage() {
    let tree = sample_tree();
    let (clean, summary) = write_image(&tree);
    let mut out = Cursor::new(vec![0xAAu8; 512 + clean.len() + 100]);
    out.set_position(512);
    write(&tree, &mut out, &opts()).unwrap();
    assert_eq!(out.position(), 512 + summary.size);
    let buf = out.into_inner();
    assert!(
        buf[512..512 + clean.len()] == clean[..],
        "padding must be written, not skipped"
    );
}

#[test]
fn every_entry_reads_back() {
    let tree = sample_tree();
    let (img, _) = write_image(&tree);
    let image = Image(&img);
    let found = image.walk();
    assert_eq!(
        found.len(),
        tree.entries.len(),
        "{:?}",
        found.keys().collect::<Vec<_>>()
    );
    for e in &tree.entries {
        let ino = &found[&e.path];
        check_entry(&image, &tree, e, ino);
    }
    assert_eq!(
        found["etc/x-hard"].nid, found["etc/small"].nid,
        "hardlink shares the inode"
    );
    assert_eq!(found["etc/small"].nlink, 2);
    assert_eq!(found[""].nlink, 2 + 4, "root: etc, dev, many, -dash");
    assert_eq!(found["many"].nlink, 2);
}

fn check_entry(image: &Image, tree: &Tree, e: &Entry, ino: &reader::Inode) {
    let what = &e.path;
    if let Kind::Hardlink { target } = &e.kind {
        let t = tree.entries.iter().find(|x| &x.path == target).unwrap();
        return check_entry(image, tree, t, ino);
    }
    assert_eq!(u32::from(ino.mode), e.mode(), "{what}: mode");
    assert_eq!(
        (ino.uid, ino.gid, ino.mtime),
        (e.uid, e.gid, e.mtime),
        "{what}: owner/mtime"
    );
    let want: Vec<_> = e
        .xattrs
        .iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    assert_eq!(ino.xattrs, want, "{what}: xattrs");
    match &e.kind {
        Kind::File { data, .. } => {
            let mut content = Vec::new();
            tree.store
                .open(*data)
                .unwrap()
                .read_to_end(&mut content)
                .unwrap();
            assert!(image.data(ino) == content, "{what}: content");
        }
        Kind::Symlink { target } => assert_eq!(&image.data(ino), target, "{what}: target"),
        Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
            let dev = ino.i_u;
            assert_eq!(
                ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00)),
                (*major, *minor)
            );
        }
        Kind::Dir => check_dir(image, ino, what),
        _ => assert_eq!(ino.size, 0, "{what}: size"),
    }
}

fn check_dir(image: &Image, ino: &reader::Inode, what: &str) {
    let ents = image.readdir(ino);
    let names: Vec<_> = ents.iter().map(|(n, _, _)| n.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "{what}: dirents sorted by name bytes");
    let dot = ents.iter().find(|(n, _, _)| n == b".").expect("dot");
    assert_eq!(dot.1, ino.nid, "{what}: . points to itself");
    assert!(ents.iter().any(|(n, _, _)| n == b".."), "{what}: dotdot");
}

#[test]
fn layouts_and_inline_tails() {
    let tree = sample_tree();
    let (img, _) = write_image(&tree);
    let image = Image(&img);
    let found = image.walk();
    // (path, layout): 0 = FLAT_PLAIN, 2 = FLAT_INLINE.
    let table = [
        ("etc/empty", 0),
        ("etc/small", 2),
        ("etc/block", 0),
        ("etc/tail", 2),
        ("etc/big-tail", 2),
        ("longlink", 0), // 64 + 4095 > 4096: the tail gets a block of its own
        ("link", 2),
        ("many", 2),
        ("dev/null", 0),
    ];
    for (path, layout) in table {
        assert_eq!(found[path].layout, layout, "{path}");
    }
    for ino in found.values() {
        let start = ino.nid as usize * 32;
        let tail = if ino.layout == 2 {
            ino.size as usize % 4096
        } else {
            0
        };
        let len = 64 + ino.xattr_size + tail;
        assert!(
            start % 4096 + len <= 4096,
            "nid {} record crosses a block boundary",
            ino.nid
        );
    }
}

#[test]
fn dot_dot_of_subdir_is_parent() {
    let tree = sample_tree();
    let (img, _) = write_image(&tree);
    let image = Image(&img);
    let found = image.walk();
    let ents = image.readdir(&found["dev"]);
    let dotdot = ents.iter().find(|(n, _, _)| n == b"..").unwrap();
    assert_eq!(dotdot.1, image.root_nid());
    let root = image.readdir(&found[""]);
    assert_eq!(
        root.iter().find(|(n, _, _)| n == b"..").unwrap().1,
        image.root_nid()
    );
    // File types in dirents: EROFS_FT_* values.
    let ft = |dir: &str, name: &[u8]| {
        image
            .readdir(&found[dir])
            .into_iter()
            .find(|(n, _, _)| n == name)
            .unwrap()
            .2
    };
    let table: [(&str, &[u8], u8); 7] = [
        ("", b"etc", 2),
        ("etc", b"small", 1),
        ("etc", b"x-hard", 1),
        ("dev", b"null", 3),
        ("dev", b"sda", 4),
        ("dev", b"fifo", 5),
        ("", b"link", 7),
    ];
    for (dir, name, want) in table {
        assert_eq!(
            ft(dir, name),
            want,
            "{dir}/{}",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn huge_xattrs_span_blocks_without_inline_tail() {
    let mut b = Builder::new();
    b.file("f", b"tail".to_vec()).xattrs = vec![xattr("user.big", &pattern(6000, 9))];
    b.add(
        "s",
        Kind::Symlink {
            target: b"f".to_vec(),
        },
    )
    .xattrs = vec![xattr("user.x", &[5; 4030])];
    let tree = b.build();
    let (img, _) = write_image(&tree);
    let image = Image(&img);
    let found = image.walk();
    for path in ["f", "s"] {
        let ino = &found[path];
        assert_eq!(
            ino.layout, 0,
            "{path}: no inline tail after oversized xattrs"
        );
        check_entry(
            &image,
            &tree,
            &tree.entries[if path == "f" { 1 } else { 2 }],
            ino,
        );
    }
}

#[test]
fn refuses_what_the_format_cannot_hold() {
    type Edit = fn(&mut Builder);
    let table: [(&str, Edit, &str); 7] = [
        (
            "long name",
            |b| {
                b.file(&"n".repeat(256), vec![]);
            },
            "at most 255",
        ),
        (
            "xattr namespace",
            |b| b.file("f", vec![]).xattrs = vec![xattr("system.x", b"")],
            "namespace",
        ),
        (
            "big xattr value",
            |b| b.file("f", vec![]).xattrs = vec![xattr("user.v", &[0; 65536])],
            "65535",
        ),
        (
            "device major",
            |b| {
                b.add(
                    "d",
                    Kind::CharDev {
                        major: 4096,
                        minor: 0,
                    },
                );
            },
            "12:20",
        ),
        (
            "symlink length",
            |b| {
                b.add(
                    "l",
                    Kind::Symlink {
                        target: vec![b'a'; 4096],
                    },
                );
            },
            "4095",
        ),
        (
            "empty symlink",
            |b| {
                b.add("l", Kind::Symlink { target: vec![] });
            },
            "4095",
        ),
        (
            "hardlink to dir",
            |b| {
                b.add("h", Kind::Hardlink { target: "".into() });
            },
            "regular file",
        ),
    ];
    for (what, edit, needle) in table {
        let mut b = Builder::new();
        edit(&mut b);
        let err = write(&b.build(), &mut Cursor::new(Vec::new()), &opts()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(needle), "{what}: {msg}");
        assert!(msg.contains("/"), "{what}: error names the path: {msg}");
    }
}

#[test]
fn content_size_mismatch_names_the_file() {
    for (declared, actual) in [(10u64, 5usize), (5, 10), (8192, 8191), (4096, 4097)] {
        let mut b = Builder::new();
        b.add("etc", Kind::Dir);
        b.file("etc/f", vec![7; actual]);
        if let Some(Kind::File { size, .. }) = b.entries.last_mut().map(|e| &mut e.kind) {
            *size = declared;
        }
        let err = write(&b.build(), &mut Cursor::new(Vec::new()), &opts()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("/etc/f") && msg.contains("content"),
            "{declared}/{actual}: {msg}"
        );
    }
}

#[test]
fn volume_name_too_long() {
    let o = Options {
        volume_name: "x".repeat(17),
        ..opts()
    };
    let err = write(&Builder::new().build(), &mut Cursor::new(Vec::new()), &o).unwrap_err();
    assert!(format!("{err:#}").contains("16 bytes"));
}

#[test]
fn minimal_tree_is_two_blocks_or_less() {
    let (img, summary) = write_image(&Builder::new().build());
    assert_eq!(summary.inodes, 1);
    assert_eq!(img.len(), 4096, "root with inline dirents fits block 0");
}

#[test]
fn fsck_erofs_accepts_image() {
    let Some(fsck) = crate::tool::which("fsck.erofs") else {
        assert!(
            std::env::var_os("NODEIMG_REQUIRE_TOOLS").is_none(),
            "fsck.erofs missing and NODEIMG_REQUIRE_TOOLS is set"
        );
        eprintln!("SKIP: fsck.erofs not on PATH; erofs image not cross-checked");
        return;
    };
    let (img, _) = write_image(&sample_tree());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.erofs");
    std::fs::write(&path, &img).unwrap();
    crate::tool::run(std::process::Command::new(fsck).arg("--extract").arg(&path))
        .expect("fsck.erofs");
}
