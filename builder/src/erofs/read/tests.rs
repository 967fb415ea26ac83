//! Reader tests: round trip with the writer over a tree with every entry kind, images from
//! `mkfs.erofs` (compact inodes), hand-made corruptions and random byte flips (errors, never
//! panics), and the committed corpus in `fuzz/corpus/erofs_read/`.

use std::io::{self, Cursor, Read};
use std::path::PathBuf;

use super::*;
use crate::erofs::{write, Options};
use crate::rootfs::{path_cmp, ContentStore, DataRef, Entry, Kind, Tree};

#[derive(Debug, Default)]
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
        perm: if kind == Kind::Dir { 0o755 } else { 0o640 },
        kind,
        uid: 1000,
        gid: 100,
        mtime: 1_700_000_000,
        xattrs: vec![],
    }
}

fn x(name: &str, value: &[u8]) -> Xattr {
    Xattr {
        name: name.as_bytes().to_vec(),
        value: value.to_vec(),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

/// Every entry kind, hardlinks, xattrs of every namespace, plain and inline layouts.
pub(super) fn rich_tree() -> Tree {
    tree_with(400)
}

/// [`rich_tree`] with `many` files in `/zz`.
fn tree_with(many: usize) -> Tree {
    let mut store = Mem::default();
    let mut file = |path: &str, content: Vec<u8>| {
        let size = content.len() as u64;
        store.0.push(content);
        entry(
            path,
            Kind::File {
                size,
                data: DataRef(store.0.len() as u64 - 1),
            },
        )
    };
    let mut es = vec![
        entry("", Kind::Dir),
        file("a-small", b"hi\n".to_vec()),
        file("big", pattern(3 * 4096 + 17, 1)),
        file("block", pattern(8192, 2)),
        file("empty", vec![]),
        entry("dev", Kind::Dir),
        entry("dev/null", Kind::CharDev { major: 1, minor: 3 }),
        entry(
            "dev/sda9",
            Kind::BlockDev {
                major: 8,
                minor: 0x12345,
            },
        ),
        entry("dev/fifo", Kind::Fifo),
        entry("dev/sock", Kind::Socket),
        entry(
            "link",
            Kind::Symlink {
                target: b"a-small".to_vec(),
            },
        ),
        entry(
            "longlink",
            Kind::Symlink {
                target: vec![b'y'; 4095],
            },
        ),
        entry(
            "h1",
            Kind::Hardlink {
                target: "a-small".into(),
            },
        ),
        entry("zz", Kind::Dir),
        entry(
            "zz/h2",
            Kind::Hardlink {
                target: "a-small".into(),
            },
        ),
    ];
    for i in 0..many {
        es.push(file(
            &format!("zz/entry-with-a-long-name-{i:05}"),
            vec![b'q'; i % 5],
        ));
    }
    es[1].xattrs = vec![
        x("security.capability", &[1; 20]),
        x("system.posix_acl_access", &[2, 0, 0, 0]),
        x("trusted.overlay.opaque", b"y"),
        x("user.comment", b"hello"),
    ];
    es[2].perm = 0o4755;
    es[5].perm = 0o1777;
    es[10].xattrs = vec![x("user.big", &pattern(5000, 3))];
    es.sort_by(|a, b| path_cmp(&a.path, &b.path));
    Tree {
        entries: es,
        store: Box::new(store),
    }
}

pub(super) fn write_tree(tree: &Tree) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let opts = Options {
        uuid: *b"fedcba9876543210",
        build_time: 1_700_000_001,
        volume_name: "rootvol".into(),
    };
    write(tree, &mut out, &opts).expect("write erofs");
    out.into_inner()
}

fn content(t: &Tree, e: &Entry) -> Vec<u8> {
    match e.kind {
        Kind::File { data, .. } => {
            let mut v = Vec::new();
            t.store.open(data).unwrap().read_to_end(&mut v).unwrap();
            v
        }
        _ => vec![],
    }
}

/// `got` equals `want` entry by entry (contents compared, data refs ignored).
fn assert_same_tree(want: &Tree, got: &Tree) {
    let paths = |t: &Tree| t.entries.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(want), paths(got));
    for (w, g) in want.entries.iter().zip(&got.entries) {
        let strip = |e: &Entry| match e.kind {
            Kind::File { size, .. } => Entry {
                kind: Kind::File {
                    size,
                    data: DataRef(0),
                },
                ..e.clone()
            },
            // One inode: a hardlink's metadata is its file's, so only its kind is compared.
            Kind::Hardlink { .. } => Entry {
                perm: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
                xattrs: vec![],
                ..e.clone()
            },
            _ => e.clone(),
        };
        assert_eq!(strip(w), strip(g), "/{}", w.path);
        assert!(content(want, w) == content(got, g), "/{}: content", w.path);
    }
}

#[test]
fn round_trip_with_the_writer() {
    let tree = rich_tree();
    let img = write_tree(&tree);
    let image = Image::open(img.clone()).unwrap();
    let sb = image.superblock();
    assert_eq!(
        (sb.block_size, sb.root_nid, sb.build_time),
        (4096, 36, 1_700_000_001)
    );
    assert_eq!(
        (&sb.uuid, sb.volume_name.as_slice()),
        (b"fedcba9876543210", &b"rootvol"[..])
    );
    let s = image.scan().unwrap();
    assert_eq!(s.paths as usize, tree.entries.len());
    assert_eq!(
        s.inodes as usize,
        tree.entries.len() - 2,
        "two hardlinks share an inode"
    );
    let nodes = image.walk().unwrap();
    let small = nodes.iter().find(|n| n.path == "a-small").unwrap();
    assert_eq!(small.inode.nlink, 3);
    assert!(small.inode.extended);
    let got = Image::open(img).unwrap().into_tree().unwrap();
    assert_same_tree(&tree, &got);
}

#[test]
fn layouts_are_decoded() {
    let img = write_tree(&rich_tree());
    let image = Image::open(img.as_slice()).unwrap();
    let nodes = image.walk().unwrap();
    let layout = |p: &str| nodes.iter().find(|n| n.path == p).unwrap().inode.layout;
    for (p, want) in [
        ("a-small", DataLayout::FlatInline),
        ("block", DataLayout::FlatPlain),
        ("big", DataLayout::FlatInline),
        ("longlink", DataLayout::FlatPlain),
        ("zz", DataLayout::FlatInline),
    ] {
        assert_eq!(layout(p), want, "{p}");
    }
}

/// Opens and fully reads an image; the result may be an error, never a panic.
pub(super) fn exercise(bytes: &[u8]) -> Result<ScanSummary> {
    let image = Image::open(bytes)?;
    let s = image.scan()?;
    Image::open(bytes.to_vec())?.into_tree()?;
    Ok(s)
}

/// Offset of the inode of `path` in a valid image.
fn inode_offset(img: &[u8], path: &str) -> usize {
    let image = Image::open(img).unwrap();
    let n = image
        .walk()
        .unwrap()
        .into_iter()
        .find(|n| n.path == path)
        .unwrap();
    n.inode.nid as usize * 32
}

fn put(img: &mut [u8], at: usize, bytes: &[u8]) {
    img[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Inode offsets of a few entries of the rich tree's image.
struct Off {
    small: usize,
    blk: usize,
    link: usize,
    /// First directory block of `/zz` and of the root.
    zz_dir: usize,
    root_dir: usize,
}

#[test]
fn malformed_images_are_errors() {
    let good = write_tree(&rich_tree());
    let o = Off {
        small: inode_offset(&good, "a-small"),
        blk: inode_offset(&good, "block"),
        link: inode_offset(&good, "link"),
        zz_dir: dirent_block(&good, inode_offset(&good, "zz")),
        root_dir: dirent_block(&good, 36 * 32),
    };
    type Edit = fn(&mut Vec<u8>, &Off);
    let table: [(&str, Edit, &str); 19] = [
        ("magic", |i, _| i[1024] ^= 1, "magic"),
        ("block bits", |i, _| i[1024 + 12] = 40, "block size"),
        ("compression", |i, _| i[1024 + 80] = 0x2, "features"),
        (
            "blocks",
            |i, _| put(i, 1024 + 36, &u32::MAX.to_le_bytes()),
            "blocks",
        ),
        ("truncated", |i, _| i.truncate(8192), "blocks"),
        (
            "root not dir",
            |i, o| put(i, 1024 + 14, &((o.small / 32) as u16).to_le_bytes()),
            "not a directory",
        ),
        (
            "root nid",
            |i, _| put(i, 1024 + 14, &u16::MAX.to_le_bytes()),
            "past the end",
        ),
        (
            "compressed inode",
            |i, o| i[o.small] = 1 | (3 << 1),
            "compressed",
        ),
        ("format bits", |i, o| i[o.small] |= 0x40, "unknown bits"),
        (
            "file type",
            |i, o| put(i, o.small + 4, &0o170644u16.to_le_bytes()),
            "file type",
        ),
        (
            "data blocks",
            |i, o| put(i, o.blk + 16, &0x00ff_ffffu32.to_le_bytes()),
            "past the end",
        ),
        (
            "size",
            |i, o| put(i, o.blk + 8, &u64::MAX.to_le_bytes()),
            "past the end",
        ),
        (
            "inline tail",
            |i, o| put(i, o.small + 8, &4000u64.to_le_bytes()),
            "crosses",
        ),
        (
            "xattr count",
            |i, o| put(i, o.link + 2, &u16::MAX.to_le_bytes()),
            "xattr",
        ),
        (
            "xattr index",
            |i, o| i[o.link + 64 + 12 + 1] = 0x85,
            "prefix",
        ),
        (
            "dirent nameoff",
            |i, o| put(i, o.zz_dir + 8, &7u16.to_le_bytes()),
            "multiple of 12",
        ),
        (
            "dirent nid",
            |i, o| put(i, o.zz_dir + 24, &(1u64 << 40).to_le_bytes()),
            "past the end",
        ),
        (
            "dot",
            |i, o| put(i, o.root_dir, &99u64.to_le_bytes()),
            "`.`",
        ),
        (
            "cycle",
            |i, o| redirect_child_to_root(i, o.zz_dir),
            "reached twice",
        ),
    ];
    for (what, edit, needle) in table {
        let mut img = good.clone();
        edit(&mut img, &o);
        let err = exercise(&img).expect_err(what);
        let msg = format!("{err:#}");
        assert!(msg.contains(needle), "{what}: {msg}");
    }
}

/// Image offset of the first directory block of the directory inode at `off`.
fn dirent_block(img: &[u8], off: usize) -> usize {
    let image = Image::open(img).unwrap();
    let ino = image.inode(off as u64 / 32).unwrap();
    if ino.blocks_len > 0 {
        ino.blocks_at as usize
    } else {
        ino.tail_at as usize
    }
}

/// Points the first child entry of directory `zz` at the root directory (a cycle).
fn redirect_child_to_root(img: &mut [u8], at: usize) {
    // Entries are sorted: `.`, `..`, then the first file; point that file at the root.
    let first_child = at + 24;
    img[first_child..first_child + 8].copy_from_slice(&36u64.to_le_bytes());
    img[first_child + 10] = 2;
}

/// xorshift64*: a fixed, seedable byte source for the flip test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let good = write_tree(&tree_with(20));
    let meta_end = {
        let image = Image::open(good.as_slice()).unwrap();
        let nodes = image.walk().unwrap();
        nodes
            .iter()
            .map(|n| n.inode.nid as usize * 32 + 4096)
            .max()
            .unwrap()
            .min(good.len())
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..2000 {
        let mut img = good.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = 1024 + (rng.next() as usize) % (meta_end - 1024);
            img[at] ^= 1 << (rng.next() % 8);
        }
        match exercise(&img) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert!(
        err > 100 && ok > 100,
        "flips should both pass and fail: ok {ok}, err {err}"
    );
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/erofs_read")
}

/// Replays the committed fuzz corpus: every input must give a result, not a panic; the
/// inputs named `ok-*` must read cleanly. `ok-*`/`bad-*` come from [`regenerate_erofs_corpus`];
/// `fuzz-*` are inputs a libFuzzer run of the `erofs_read` target (3.7 M executions) kept for coverage.
#[test]
fn corpus_replays_without_panics() {
    let mut n = 0;
    for f in std::fs::read_dir(corpus_dir()).expect("corpus dir") {
        let p = f.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let r = exercise(&bytes);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ok-") {
            r.unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
        n += 1;
    }
    assert!(n >= 5, "corpus has only {n} inputs");
}

/// Regenerates the seed corpus: `NODEIMG_WRITE_CORPUS=1 cargo test -p builder regenerate_erofs_corpus`.
#[test]
fn regenerate_erofs_corpus() {
    if std::env::var_os("NODEIMG_WRITE_CORPUS").is_none() {
        return;
    }
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut small = Tree {
        entries: vec![entry("", Kind::Dir)],
        store: Box::new(Mem::default()),
    };
    std::fs::write(dir.join("ok-empty-root"), write_tree(&small)).unwrap();
    let mut store = Mem::default();
    store.0.push(b"data\n".to_vec());
    small.entries.push(entry(
        "f",
        Kind::File {
            size: 5,
            data: DataRef(0),
        },
    ));
    small.entries.push(entry(
        "l",
        Kind::Symlink {
            target: b"f".to_vec(),
        },
    ));
    small.entries[1].xattrs = vec![x("user.a", b"b")];
    small.store = Box::new(store);
    let one = write_tree(&small);
    std::fs::write(dir.join("ok-file-link-xattr"), &one).unwrap();
    std::fs::write(dir.join("bad-truncated"), &one[..2000]).unwrap();
    let mut bad = one.clone();
    bad[36 * 32 + 2] = 0xff; // root xattr count
    std::fs::write(dir.join("bad-xattr-count"), bad).unwrap();
    let mut bad = one.clone();
    bad[1024] = 0;
    std::fs::write(dir.join("bad-magic"), bad).unwrap();
    std::fs::write(dir.join("bad-empty"), b"").unwrap();
}

#[test]
fn mkfs_erofs_images_read_back() {
    let Some(mkfs) = crate::tool::which("mkfs.erofs") else {
        assert!(
            std::env::var_os("NODEIMG_REQUIRE_TOOLS").is_none(),
            "mkfs.erofs missing and NODEIMG_REQUIRE_TOOLS is set"
        );
        eprintln!("SKIP: mkfs.erofs not on PATH; compact-inode images not checked");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("sub/f"), pattern(10_000, 5)).unwrap();
    std::fs::write(src.join("tiny"), b"x").unwrap();
    std::os::unix::fs::symlink("sub/f", src.join("ln")).unwrap();
    std::fs::hard_link(src.join("tiny"), src.join("sub/deeper/tiny2")).unwrap();
    let img = d.path().join("img");
    crate::tool::run(
        std::process::Command::new(mkfs)
            .args(["-T", "1000"])
            .arg(&img)
            .arg(&src),
    )
    .expect("mkfs.erofs");
    let bytes = std::fs::read(&img).unwrap();
    let image = Image::open(bytes.as_slice()).unwrap();
    image.scan().unwrap();
    let tree = Image::open(bytes.clone()).unwrap().into_tree().unwrap();
    let f = tree.entries.iter().find(|e| e.path == "sub/f").unwrap();
    assert_eq!(content(&tree, f), pattern(10_000, 5));
    assert_eq!(tree.read_file("sub/deeper/tiny2").unwrap(), b"x");
    assert_eq!(
        tree.get("tiny").unwrap().kind,
        Kind::Hardlink {
            target: "sub/deeper/tiny2".into()
        },
        "the first name in tree order holds the file"
    );
    assert_eq!(
        tree.get("ln").unwrap().kind,
        Kind::Symlink {
            target: b"sub/f".to_vec()
        }
    );
    assert!(
        tree.entries.iter().all(|e| e.mtime == 1000),
        "-T 1000 on every inode"
    );
}
