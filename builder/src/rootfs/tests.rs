//! Reader tests: tar (plain/gzip/zstd), directory, hostile entries.

use std::io::{Read, Write};
use std::path::Path;

use super::*;

/// Appends a raw header + data, letting tests write names the `tar` crate would refuse.
fn raw_entry(out: &mut Vec<u8>, name: &[u8], kind: u8, link: &[u8], data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(12345);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn gnu() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mode(0o644);
    h.set_mtime(0);
    h
}

fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_mtime(5);
    h.set_size(0);
    b.append_data(&mut h.clone(), "etc/", std::io::empty())
        .unwrap();
    let mut f = gnu();
    f.set_mode(0o4755);
    f.set_uid(1000);
    f.set_gid(100);
    f.set_mtime(2_000_000_000);
    f.set_size(5);
    b.append_pax_extensions([("SCHILY.xattr.security.capability", &b"\x01\x00\x00\x02"[..])])
        .unwrap();
    b.append_data(&mut f.clone(), "usr/bin/ping", &b"hello"[..])
        .unwrap();
    let mut l = gnu();
    l.set_entry_type(tar::EntryType::Link);
    l.set_size(0);
    b.append_link(&mut l, "bin/ping2", "usr/bin/ping").unwrap();
    let mut s = gnu();
    s.set_entry_type(tar::EntryType::Symlink);
    s.set_size(0);
    b.append_link(&mut s, "etc/link", "/usr/bin/ping").unwrap();
    let mut c = gnu();
    c.set_entry_type(tar::EntryType::Char);
    c.set_device_major(1).unwrap();
    c.set_device_minor(3).unwrap();
    c.set_size(0);
    b.append_data(&mut c, "dev/null", std::io::empty()).unwrap();
    b.into_inner().unwrap()
}

fn load_bytes(bytes: &[u8], dir: &Path) -> Result<Loaded> {
    let p = tempfile::NamedTempFile::new_in(dir)
        .unwrap()
        .into_temp_path()
        .keep()
        .unwrap();
    std::fs::write(&p, bytes).unwrap();
    load(&RootfsSource::Tar(p), 1_700_000_000, dir, None)
}

fn content(t: &Tree, path: &str) -> Vec<u8> {
    t.read_file(path).unwrap()
}

#[test]
fn tar_plain_gzip_zstd_give_the_same_tree() {
    let d = tempfile::tempdir().unwrap();
    let plain = sample_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let trees: Vec<Loaded> = [&plain, &gz, &zst]
        .iter()
        .map(|b| load_bytes(b, d.path()).unwrap())
        .collect();
    for l in &trees {
        assert_eq!(l.tree.entries, trees[0].tree.entries);
        assert_eq!(content(&l.tree, "usr/bin/ping"), b"hello");
    }
    let t = &trees[0].tree;
    let paths: Vec<_> = t.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "",
            "bin",
            "bin/ping2",
            "dev",
            "dev/null",
            "etc",
            "etc/link",
            "usr",
            "usr/bin",
            "usr/bin/ping"
        ]
    );
    // The hardlink group's first name in sorted order holds the content.
    assert!(matches!(
        t.get("bin/ping2").unwrap().kind,
        Kind::File { size: 5, .. }
    ));
    assert_eq!(
        t.get("usr/bin/ping").unwrap().kind,
        Kind::Hardlink {
            target: "bin/ping2".into()
        }
    );
    let ping = t.get("bin/ping2").unwrap();
    assert_eq!(
        (ping.perm, ping.uid, ping.gid, ping.mtime),
        (0o4755, 1000, 100, 1_700_000_000)
    );
    assert_eq!(ping.xattrs[0].name, b"security.capability");
    assert_eq!(t.get("etc").unwrap().mtime, 5);
    assert_eq!(
        t.get("dev/null").unwrap().kind,
        Kind::CharDev { major: 1, minor: 3 }
    );
    assert_eq!(t.resolve("etc/link").as_deref(), Some("usr/bin/ping"));
    // Input digests are of the file bytes.
    let d: Vec<[u8; 32]> = trees
        .into_iter()
        .map(|t| t.input_sha256.unwrap().wait().unwrap())
        .collect();
    assert_ne!(d[0], d[1]);
}

#[test]
fn hostile_tars_are_refused_with_the_entry_named() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            {
                let mut v = Vec::new();
                raw_entry(&mut v, b"../x", b'0', b"", b"evil");
                v.extend([0; 1024]);
                v
            },
            "`..`",
        ),
        (
            {
                let mut v = Vec::new();
                raw_entry(&mut v, b"a/../../x", b'0', b"", b"");
                v
            },
            "`..`",
        ),
        (
            {
                let mut v = Vec::new();
                raw_entry(&mut v, b"lib", b'2', b"/tmp", b"");
                raw_entry(&mut v, b"lib/evil", b'0', b"", b"x");
                v
            },
            "symlink",
        ),
        (
            {
                let mut v = Vec::new();
                raw_entry(&mut v, b"l", b'1', b"../etc/shadow", b"");
                v
            },
            "`..`",
        ),
        (
            {
                let mut v = Vec::new();
                raw_entry(&mut v, b"l", b'1', b"missing", b"");
                v
            },
            "not in the rootfs",
        ),
        (
            {
                let mut v = sample_tar();
                v.truncate(1536 + 100);
                v
            },
            "truncated",
        ),
        (
            {
                let mut v = Vec::new();
                raw_entry(&mut v, b"big", b'0', b"", &[7; 3000]);
                v.truncate(2048);
                v
            },
            "truncated",
        ),
        (
            {
                let mut v = Vec::new();
                raw_entry(&mut v, b"\xffname", b'0', b"", b"");
                v
            },
            "UTF-8",
        ),
    ];
    for (i, (bytes, want)) in cases.iter().enumerate() {
        let err = format!(
            "{:#}",
            load_bytes(bytes, d.path()).expect_err(&format!("case {i}"))
        );
        assert!(err.contains(want), "case {i}: {err}");
        assert!(
            err.contains("tar"),
            "case {i} does not name the input: {err}"
        );
    }
}

#[test]
fn truncated_compressed_tar_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut plain = Vec::new();
    raw_entry(&mut plain, b"big", b'0', b"", &[7; 100_000]);
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let err = format!(
        "{:#}",
        load_bytes(&zst[..zst.len() / 2], d.path()).unwrap_err()
    );
    assert!(err.contains("tar entry"), "{err}");
}

#[test]
fn directory_reader_keeps_metadata_and_never_follows_symlinks() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    let r = d.path().join("root");
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    std::fs::write(r.join("usr/bin/tool"), b"content").unwrap();
    std::fs::set_permissions(
        r.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/alias")).unwrap();
    std::fs::write(d.path().join("outside"), b"secret").unwrap();
    symlink("../../outside", r.join("usr/escape")).unwrap();
    symlink("/", r.join("rootlink")).unwrap();
    let l = load(&RootfsSource::Directory(r.clone()), 0, d.path(), None).unwrap();
    let t = &l.tree;
    let paths: Vec<_> = t.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "",
            "rootlink",
            "usr",
            "usr/bin",
            "usr/bin/alias",
            "usr/bin/tool",
            "usr/escape"
        ]
    );
    assert_eq!(
        t.get("usr/bin/tool").unwrap().kind,
        Kind::Hardlink {
            target: "usr/bin/alias".into()
        }
    );
    assert_eq!(t.get("usr/bin/alias").unwrap().perm, 0o750);
    assert_eq!(
        t.get("usr/escape").unwrap().kind,
        Kind::Symlink {
            target: b"../../outside".to_vec()
        }
    );
    assert!(t.entries.iter().all(|e| e.mtime == 0));
    let mut s = String::new();
    t.store
        .open(DataRef(0))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "content");
    // A symlink resolved inside the tree never leaves it.
    assert_eq!(t.resolve("usr/escape"), None);
    assert_eq!(
        t.resolve("rootlink/usr/bin/tool").as_deref(),
        Some("usr/bin/tool")
    );
}
