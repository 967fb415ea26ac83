//! End-to-end checks of `builder::erofs::write` against the real readers: `fsck.erofs` (check,
//! then extract as root) and the kernel (loop mount as root). The tree covers every entry kind,
//! the layout edge cases (empty, under one block, exactly one block, multi-block with tail,
//! over 1 MiB, several blocks of dirents, xattrs larger than a block) and the metadata that must survive
//! (setuid/sticky bits, 32-bit ids, mtimes, device numbers, xattrs, hardlinks).
//!
//! Root-only tests skip loudly unless `NODEIMG_REQUIRE_ROOT=1`; a missing `fsck.erofs` skips
//! loudly unless `NODEIMG_REQUIRE_TOOLS=1`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use builder::erofs::{self, Options};
use builder::rootfs::{path_cmp, ContentStore, DataRef, Entry, Kind, Tree, Xattr};

// ---------------------------------------------------------------------------------------------
// Skips

fn require_tool(name: &str) -> Option<PathBuf> {
    let found = builder::tool::which(name);
    if found.is_none() {
        assert!(
            std::env::var_os("NODEIMG_REQUIRE_TOOLS").is_none(),
            "{name} is not on PATH and NODEIMG_REQUIRE_TOOLS is set"
        );
        eprintln!("SKIP: {name} not on PATH (install erofs-utils)");
    }
    found
}

fn require_root(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("NODEIMG_REQUIRE_ROOT").is_none(),
            "{what} needs root and NODEIMG_REQUIRE_ROOT is set"
        );
        eprintln!("SKIP: {what} needs root");
    }
    root
}

// ---------------------------------------------------------------------------------------------
// The fixture tree: contents are generated on demand, so large files cost no memory.

/// `DataRef(i)` → (seed, length) of a generated content stream.
#[derive(Debug, Default)]
struct GenStore(Vec<(u64, u64)>);

impl ContentStore for GenStore {
    fn open(&self, data: DataRef) -> io::Result<Box<dyn Read + '_>> {
        let &(seed, len) = self.0.get(data.0 as usize).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(GenReader {
            state: seed | 1,
            left: len,
        }))
    }
}

/// Deterministic xorshift byte stream.
struct GenReader {
    state: u64,
    left: u64,
}

impl Read for GenReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = (self.state >> 24) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[derive(Debug, Default)]
struct Builder {
    entries: Vec<Entry>,
    store: GenStore,
}

impl Builder {
    fn add(&mut self, path: &str, kind: Kind) -> &mut Entry {
        let perm = match kind {
            Kind::Dir => 0o755,
            Kind::Symlink { .. } => 0o777,
            _ => 0o644,
        };
        let mtime = 1_700_000_000 + self.entries.len() as u64;
        self.entries.push(Entry {
            path: path.into(),
            kind,
            perm,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: vec![],
        });
        self.entries.last_mut().expect("just pushed")
    }

    fn file(&mut self, path: &str, len: u64) -> &mut Entry {
        let data = DataRef(self.store.0.len() as u64);
        self.store.0.push((
            0x9E37_79B9_7F4A_7C15 ^ data.0.wrapping_mul(0x1000_0001),
            len,
        ));
        self.add(path, Kind::File { size: len, data })
    }

    fn build(mut self) -> Tree {
        self.entries.sort_by(|a, b| path_cmp(&a.path, &b.path));
        Tree {
            entries: self.entries,
            store: Box::new(self.store),
        }
    }
}

fn xattr(name: &str, value: &[u8]) -> Xattr {
    Xattr {
        name: name.as_bytes().to_vec(),
        value: value.to_vec(),
    }
}

/// `struct vfs_cap_data` revision 2 with the effective flag and CAP_NET_RAW (13) permitted.
fn cap_net_raw_v2() -> Vec<u8> {
    let words: [u32; 5] = [0x0200_0001, 1 << 13, 0, 0, 0];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// POSIX ACL xattr (version 2): user::rw-, user:1000:r--, group::r--, mask::r--, other::r--.
fn acl_user_1000() -> Vec<u8> {
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, u32::MAX),
        (0x02, 4, 1000),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ];
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn fixture() -> Tree {
    let mut b = Builder::default();
    b.add("", Kind::Dir);
    add_files(&mut b);
    add_special(&mut b);
    add_names(&mut b);
    b.build()
}

fn add_files(b: &mut Builder) {
    b.add("data", Kind::Dir);
    for (name, len) in [
        ("empty", 0),
        ("small", 100),
        ("one-block", 4096),
        ("two-blocks", 8192),
        ("tail", 3 * 4096 + 123),
        ("near-block", 4000),
        ("big", (3 << 19) + 7),
        ("bigger", 20 << 20),
    ] {
        b.file(&format!("data/{name}"), len);
    }
    b.add("usr", Kind::Dir);
    b.add("usr/bin", Kind::Dir);
    let ping = b.file("usr/bin/ping", 9000);
    (ping.perm, ping.uid, ping.gid) = (0o4755, 0, 0);
    ping.xattrs = vec![xattr("security.capability", &cap_net_raw_v2())];
    let tool = b.file("usr/bin/tool", 5000);
    (tool.perm, tool.uid, tool.gid, tool.mtime) = (0o2755, 1000, 1000, 4_294_967_301);
    b.add(
        "usr/bin/zz-tool-alias",
        Kind::Hardlink {
            target: "usr/bin/tool".into(),
        },
    );
    b.add("usr/sbin", Kind::Dir);
    b.add(
        "usr/sbin/tool",
        Kind::Hardlink {
            target: "usr/bin/tool".into(),
        },
    );
    let xf = b.file("usr/xattrs", 10);
    (xf.uid, xf.gid) = (100_000, 65534);
    xf.xattrs = vec![
        xattr("system.posix_acl_access", &acl_user_1000()),
        xattr("trusted.overlay.opaque", b"y"),
        xattr("user.big", &vec![b'b'; 3000]),
        xattr("user.empty", b""),
        xattr("user.mime_type", b"text/plain"),
    ];
    b.file("usr/huge-xattr", 5000).xattrs = vec![xattr("user.huge", &vec![b'h'; 6000])];
    b.add("usr/share", Kind::Dir).xattrs = vec![xattr("user.dir", b"on a directory")];
}

fn add_special(b: &mut Builder) {
    b.add("dev", Kind::Dir);
    b.add("dev/null", Kind::CharDev { major: 1, minor: 3 });
    b.add(
        "dev/pts-big",
        Kind::CharDev {
            major: 136,
            minor: 300_000,
        },
    );
    b.add("dev/sda1", Kind::BlockDev { major: 8, minor: 1 });
    b.add(
        "dev/nvme-big",
        Kind::BlockDev {
            major: 259,
            minor: 65536,
        },
    );
    b.add("dev/initctl", Kind::Fifo).perm = 0o600;
    b.add("dev/log", Kind::Socket).perm = 0o666;
    b.add("tmp", Kind::Dir).perm = 0o1777;
    b.add("empty-dir", Kind::Dir).mtime = 1;
    b.add(
        "bin",
        Kind::Symlink {
            target: b"usr/bin".to_vec(),
        },
    );
    let long: Vec<u8> = (0..1000).flat_map(|_| *b"abc/").collect();
    b.add("long-link", Kind::Symlink { target: long });
    b.add(
        "longest-link",
        Kind::Symlink {
            target: vec![b'z'; 4095],
        },
    );
    b.add(
        "dangling",
        Kind::Symlink {
            target: b"/nowhere/at/all".to_vec(),
        },
    )
    .uid = 1000;
}

fn add_names(b: &mut Builder) {
    b.add("a", Kind::Dir);
    b.add("a/b", Kind::Dir);
    b.add("a/b/c", Kind::Dir);
    b.add("a/b/c/d", Kind::Dir);
    b.file("a/b/c/d/deep", 77);
    b.add("many", Kind::Dir);
    for i in 0..500 {
        b.file(&format!("many/entry-number-{i:04}"), i % 50);
    }
    b.file("many/-before-dot", 1);
    b.file("many/ space", 2);
    b.file("many/naïve-ünïcödé", 3);
    b.file(&format!("many/{}", "L".repeat(255)), 4);
}

fn options() -> Options {
    Options {
        uuid: *b"nodeimg-erofs-t!",
        build_time: 1_700_000_000,
        volume_name: "nodeimg-test".into(),
    }
}

/// Writes the fixture image into `dir`.
fn write_fixture(dir: &Path) -> (Tree, PathBuf, erofs::Summary) {
    let tree = fixture();
    let path = dir.join("root.erofs");
    let mut file = io::BufWriter::new(fs::File::create(&path).expect("create image"));
    let summary = erofs::write(&tree, &mut file, &options()).expect("write erofs image");
    drop(file);
    assert_eq!(fs::metadata(&path).unwrap().len(), summary.size);
    assert_eq!(summary.size % 4096, 0);
    (tree, path, summary)
}

// ---------------------------------------------------------------------------------------------
// Comparing a directory on disk with the tree

/// What to compare; extraction by fsck.erofs 1.5 cannot reproduce everything.
#[derive(Debug, Clone, Copy)]
struct Checks {
    /// Hardlinks share an inode and nlink is exact (fsck 1.5 extracts hardlinks as copies).
    links: bool,
    /// xattrs equal the tree's exactly (fsck 1.5 does not extract xattrs).
    xattrs: bool,
    /// setuid/setgid bits survive (fsck 1.5 chmods before lchown, which clears them).
    suid: bool,
}

fn compare(root: &Path, tree: &Tree, checks: Checks) {
    let on_disk = list_all(root);
    let wanted: Vec<&str> = tree.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(on_disk.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut w = wanted.clone();
        w.sort();
        w
    });
    for e in &tree.entries {
        let path = root.join(&e.path);
        compare_entry(&path, e, tree, checks);
    }
    if checks.links {
        compare_links(root, tree);
    }
}

/// Every path under `root` (relative, "" for root), by walking the directory.
fn list_all(root: &Path) -> BTreeMap<String, ()> {
    let mut out = BTreeMap::from([(String::new(), ())]);
    let mut todo = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = todo.pop() {
        for ent in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        {
            let ent = ent.unwrap();
            let name = ent.file_name().into_string().expect("utf-8 name");
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if ent.file_type().unwrap().is_dir() {
                todo.push((ent.path(), r.clone()));
            }
            out.insert(r, ());
        }
    }
    out
}

fn compare_entry(path: &Path, e: &Entry, tree: &Tree, checks: Checks) {
    let owner = match &e.kind {
        Kind::Hardlink { target } => tree.entries.iter().find(|x| &x.path == target).unwrap(),
        _ => e,
    };
    let what = format!("/{}", e.path);
    let md = fs::symlink_metadata(path).unwrap_or_else(|err| panic!("{what}: {err}"));
    assert_eq!(
        md.mode() & 0o170000,
        owner.file_type_bits(),
        "{what}: file type"
    );
    let mut perm_mask = 0o7777;
    if !checks.suid && md.file_type().is_file() {
        perm_mask &= !0o6000;
    }
    if !md.file_type().is_symlink() {
        assert_eq!(
            md.mode() & perm_mask,
            u32::from(owner.perm) & perm_mask,
            "{what}: perm"
        );
    }
    assert_eq!(
        (md.uid(), md.gid()),
        (owner.uid, owner.gid),
        "{what}: owner"
    );
    assert_eq!(md.mtime() as u64, owner.mtime, "{what}: mtime");
    compare_payload(path, &md, owner, tree, &what);
    if checks.xattrs {
        assert_eq!(read_xattrs(path), owner.xattrs, "{what}: xattrs");
    }
}

fn compare_payload(path: &Path, md: &fs::Metadata, e: &Entry, tree: &Tree, what: &str) {
    match &e.kind {
        Kind::File { size, data } => {
            assert_eq!(md.len(), *size, "{what}: size");
            assert_same_content(
                fs::File::open(path).unwrap(),
                tree.store.open(*data).unwrap(),
                what,
            );
        }
        Kind::Symlink { target } => {
            assert_eq!(
                fs::read_link(path).unwrap().as_os_str().as_bytes(),
                target,
                "{what}: target"
            )
        }
        Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
            let got = (libc::major(md.rdev()), libc::minor(md.rdev()));
            assert_eq!(got, (*major, *minor), "{what}: device number");
        }
        Kind::Fifo => assert!(md.file_type().is_fifo(), "{what}: fifo"),
        Kind::Socket => assert!(md.file_type().is_socket(), "{what}: socket"),
        Kind::Dir | Kind::Hardlink { .. } => {}
    }
}

fn assert_same_content(mut got: impl Read, mut want: impl Read, what: &str) {
    let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut offset = 0u64;
    loop {
        let n = read_up_to(&mut want, &mut b);
        let m = read_up_to(&mut got, &mut a[..n.max(1)]);
        assert_eq!(m, n, "{what}: length differs after {offset} bytes");
        if n == 0 {
            return;
        }
        assert!(
            a[..n] == b[..n],
            "{what}: content differs in bytes {offset}..{}",
            offset + n as u64
        );
        offset += n as u64;
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]).expect("read") {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// Hardlinks share the inode with their target, with nlink = names; dirs have 2 + subdirs.
fn compare_links(root: &Path, tree: &Tree) {
    for e in &tree.entries {
        let md = fs::symlink_metadata(root.join(&e.path)).unwrap();
        let what = format!("/{}", e.path);
        match &e.kind {
            Kind::Hardlink { target } => {
                let t = fs::symlink_metadata(root.join(target)).unwrap();
                assert_eq!(md.ino(), t.ino(), "{what}: shares the inode of {target}");
            }
            Kind::Dir => {
                let subdirs = tree
                    .entries
                    .iter()
                    .filter(|c| {
                        c.kind == Kind::Dir && !c.path.is_empty() && c.parent() == Some(&e.path)
                    })
                    .count();
                assert_eq!(md.nlink(), 2 + subdirs as u64, "{what}: nlink");
            }
            Kind::File { .. } => {
                let names = 1 + tree
                    .entries
                    .iter()
                    .filter(|h| matches!(&h.kind, Kind::Hardlink { target } if *target == e.path))
                    .count();
                assert_eq!(md.nlink(), names as u64, "{what}: nlink");
            }
            _ => assert_eq!(md.nlink(), 1, "{what}: nlink"),
        }
    }
}

/// All xattrs of `path` (not following symlinks), sorted by name.
fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let names = xattr_call(|buf, len| {
        // SAFETY: c is NUL-terminated; buf/len describe a writable buffer (or null/0).
        unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }
    });
    let mut out: Vec<Xattr> = names
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let cname = CString::new(name).unwrap();
            let value = xattr_call(|buf, len| {
                // SAFETY: as above; cname is NUL-terminated.
                unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf.cast(), len) }
            });
            Xattr {
                name: name.to_vec(),
                value,
            }
        })
        .collect();
    out.sort();
    out
}

/// Calls a size-probing xattr syscall twice: once for the length, once for the bytes.
fn xattr_call(f: impl Fn(*mut u8, usize) -> isize) -> Vec<u8> {
    let len = f(std::ptr::null_mut(), 0);
    assert!(len >= 0, "xattr size probe: {}", io::Error::last_os_error());
    let mut buf = vec![0u8; len as usize];
    let got = f(buf.as_mut_ptr(), buf.len());
    assert!(got >= 0, "xattr read: {}", io::Error::last_os_error());
    buf.truncate(got as usize);
    buf
}

// ---------------------------------------------------------------------------------------------
// Kernel mount

/// A read-only loop mount of an image, unmounted on drop (also when a check panics).
struct Mount {
    dir: PathBuf,
}

impl Mount {
    fn new(image: &Path, dir: &Path) -> Mount {
        let fs_list = fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !fs_list.lines().any(|l| l.trim_end().ends_with("erofs")) {
            builder::tool::run(Command::new("modprobe").arg("erofs")).expect("modprobe erofs");
        }
        fs::create_dir_all(dir).unwrap();
        builder::tool::run(
            Command::new("mount")
                .args(["-o", "loop,ro", "-t", "erofs"])
                .arg(image)
                .arg(dir),
        )
        .expect("mount the erofs image");
        Mount {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = builder::tool::run(Command::new("umount").arg(&self.dir)) {
            eprintln!("warning: could not unmount {}: {e:#}", self.dir.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn fsck_erofs_checks_every_inode() {
    let Some(fsck) = require_tool("fsck.erofs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, image, summary) = write_fixture(dir.path());
    // --extract without a target reads and verifies all file data as well.
    builder::tool::run(Command::new(&fsck).arg("--extract").arg(&image)).expect("fsck.erofs");
    assert!(summary.size > 20 << 20, "the image holds the 20 MiB file");
}

#[test]
fn image_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (_, image, _) = write_fixture(dir.path());
    let first = fs::read(&image).unwrap();
    let other = dir.path().join("again");
    fs::create_dir(&other).unwrap();
    let (_, image2, _) = write_fixture(&other);
    assert!(
        first == fs::read(image2).unwrap(),
        "two builds of one tree differ"
    );
}

#[test]
fn fsck_erofs_extract_matches_tree() {
    let Some(fsck) = require_tool("fsck.erofs") else {
        return;
    };
    if !require_root("fsck.erofs --extract --preserve (chown, mknod)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tree, image, _) = write_fixture(dir.path());
    let out = dir.path().join("extracted");
    let arg = format!("--extract={}", out.display());
    builder::tool::run(Command::new(&fsck).arg(arg).arg("--preserve").arg(&image))
        .expect("fsck.erofs --extract");
    compare(
        &out,
        &tree,
        Checks {
            links: false,
            xattrs: false,
            suid: false,
        },
    );
}

#[test]
fn kernel_mount_matches_tree() {
    if !require_root("mounting an erofs image") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tree, image, _) = write_fixture(dir.path());
    let mount = Mount::new(&image, &dir.path().join("mnt"));
    compare(
        &mount.dir,
        &tree,
        Checks {
            links: true,
            xattrs: true,
            suid: true,
        },
    );
    let vfs = statvfs(&mount.dir);
    assert_eq!(vfs.f_bsize, 4096);
}

fn statvfs(path: &Path) -> libc::statvfs {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is NUL-terminated; out is a valid statvfs to fill.
    let mut out: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut out) };
    assert_eq!(rc, 0, "statvfs: {}", io::Error::last_os_error());
    out
}
