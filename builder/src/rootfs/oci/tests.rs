//! OCI layouts built in a tempdir: whiteouts and opaque directories across layers, gzip and
//! zstd layers, tag selection, and the refusals (digest, size, diff_id, `..`, stale hardlinks).

use std::io::Write;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::rootfs::{load, Kind, Loaded};
use image_config::RootfsSource;

const EPOCH: u64 = 1_700_000_000;

/// One tar item of a test layer.
enum Item<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
    Symlink(&'a str, &'a str),
    /// A raw ustar header with any name (for names the tar crate refuses to write).
    Raw(&'a [u8], u8, &'a [u8]),
}

fn header(kind: u8, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn raw(out: &mut Vec<u8>, name: &[u8], kind: u8, link: &[u8], data: &[u8]) {
    let mut h = header(kind, data.len() as u64, 0o644);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn tar_of(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        match *it {
            Item::Dir(p) => raw(&mut out, p.as_bytes(), b'5', b"", b""),
            Item::File(p, d) => raw(&mut out, p.as_bytes(), b'0', b"", d),
            Item::Link(p, t) => raw(&mut out, p.as_bytes(), b'1', t.as_bytes(), b""),
            Item::Symlink(p, t) => raw(&mut out, p.as_bytes(), b'2', t.as_bytes(), b""),
            Item::Raw(n, k, d) => raw(&mut out, n, k, b"", d),
        }
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[derive(Debug, Clone, Copy)]
enum Comp {
    None,
    Gzip,
    Zstd,
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Writes `bytes` as a blob; returns its descriptor.
fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let d = sha(bytes);
    let p = dir.join("blobs/sha256").join(&d[7..]);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

fn layer_blob(dir: &Path, comp: Comp, tar: &[u8]) -> serde_json::Value {
    let base = "application/vnd.oci.image.layer.v1.tar";
    let (mt, bytes) = match comp {
        Comp::None => (base.to_string(), tar.to_vec()),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            (format!("{base}+gzip"), e.finish().unwrap())
        }
        Comp::Zstd => (format!("{base}+zstd"), zstd::encode_all(tar, 1).unwrap()),
    };
    blob(dir, &mt, &bytes)
}

/// Writes an image (manifest + config + layers); returns the manifest descriptor.
fn image(dir: &Path, layers: &[(Comp, Vec<u8>)], tag: Option<&str>) -> serde_json::Value {
    let descs: Vec<_> = layers.iter().map(|(c, t)| layer_blob(dir, *c, t)).collect();
    let diff_ids: Vec<_> = layers.iter().map(|(_, t)| sha(t)).collect();
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let cdesc = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cdesc, "layers": descs});
    let mut mdesc = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&m).unwrap(),
    );
    if let Some(t) = tag {
        mdesc["annotations"] = json!({"org.opencontainers.image.ref.name": t});
    }
    mdesc
}

fn write_index(dir: &Path, manifests: &[serde_json::Value]) {
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A one-image layout of `layers`; returns the manifest descriptor.
fn layout(dir: &Path, layers: &[(Comp, Vec<u8>)]) -> serde_json::Value {
    let m = image(dir, layers, Some("latest"));
    write_index(dir, std::slice::from_ref(&m));
    m
}

fn load_oci(dir: &Path, tag: Option<&str>) -> anyhow::Result<Loaded> {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let src = RootfsSource::Oci {
        dir: dir.to_path_buf(),
        tag: tag.map(str::to_string),
    };
    load(&src, EPOCH, &work, None)
}

fn paths(l: &Loaded) -> Vec<&str> {
    l.tree.entries.iter().map(|e| e.path.as_str()).collect()
}

fn text(l: &Loaded, p: &str) -> String {
    String::from_utf8(l.tree.read_file(p).unwrap()).unwrap()
}

fn three_layers() -> Vec<(Comp, Vec<u8>)> {
    let base = tar_of(&[
        Item::Dir("etc/"),
        Item::File("etc/a", b"a0"),
        Item::File("etc/b", b"b0"),
        Item::File("var/lib/x", b"x0"),
        Item::File("var/lib/y/z", b"z0"),
        Item::File("opt/keep", b"k0"),
        Item::File("swap", b"file"),
        Item::Dir("tree/"),
        Item::File("tree/leaf", b"l"),
    ]);
    let mid = tar_of(&[
        Item::File("etc/.wh.a", b""),
        Item::File("var/lib/new", b"n1"), // before the opaque marker: same layer, survives
        Item::File("var/lib/.wh..wh..opq", b""),
        Item::File("opt/keep", b"k1"),
        Item::Dir("swap/"),
        Item::File("swap/now-a-dir", b"d"),
        Item::Symlink("tree", "etc"),
    ]);
    let top = tar_of(&[Item::File(".wh.opt", b""), Item::File("etc/c", b"c2")]);
    vec![(Comp::None, base), (Comp::Gzip, mid), (Comp::Zstd, top)]
}

#[test]
fn whiteouts_and_opaque_dirs_across_layers() {
    let d = tempfile::tempdir().unwrap();
    let m = layout(d.path(), &three_layers());
    let l = load_oci(d.path(), Some("latest")).unwrap();
    assert_eq!(
        paths(&l),
        [
            "",
            "etc",
            "etc/b",
            "etc/c",
            "swap",
            "swap/now-a-dir",
            "tree",
            "var",
            "var/lib",
            "var/lib/new",
        ]
    );
    assert_eq!(text(&l, "etc/b"), "b0");
    assert_eq!(text(&l, "etc/c"), "c2");
    assert_eq!(text(&l, "var/lib/new"), "n1");
    assert_eq!(l.tree.get("swap").unwrap().kind, Kind::Dir);
    assert!(matches!(
        l.tree.get("tree").unwrap().kind,
        Kind::Symlink { .. }
    ));
    let want = hex::decode(&m["digest"].as_str().unwrap()[7..]).unwrap();
    assert_eq!(
        l.input_sha256.unwrap().wait().unwrap()[..],
        want[..],
        "identity = manifest digest"
    );
    assert!(l.tree.entries.iter().all(|e| e.mtime <= EPOCH));
}

#[test]
fn later_layer_replaces_content_and_metadata() {
    let d = tempfile::tempdir().unwrap();
    let l0 = tar_of(&[
        Item::File("bin/sh", b"old"),
        Item::Dir("d/"),
        Item::File("d/x", b"x"),
    ]);
    let mut l1 = Vec::new();
    let mut h = header(b'0', 3, 0o4755);
    h.set_path("bin/sh").unwrap();
    h.set_uid(7);
    h.set_cksum();
    l1.extend_from_slice(h.as_bytes());
    l1.extend_from_slice(b"new");
    l1.resize(1024, 0);
    let mut dh = header(b'5', 0, 0o700);
    dh.set_path("d/").unwrap();
    dh.set_cksum();
    l1.extend_from_slice(dh.as_bytes());
    l1.extend_from_slice(&[0; 1024]);
    layout(d.path(), &[(Comp::Gzip, l0), (Comp::None, l1)]);
    let l = load_oci(d.path(), None).unwrap();
    assert_eq!(text(&l, "bin/sh"), "new");
    let sh = l.tree.get("bin/sh").unwrap();
    assert_eq!((sh.perm, sh.uid), (0o4755, 7));
    assert_eq!(
        l.tree.get("d").unwrap().perm,
        0o700,
        "dir metadata replaced"
    );
    assert_eq!(text(&l, "d/x"), "x", "dir over dir keeps its children");
}

#[test]
fn tag_selection() {
    let d = tempfile::tempdir().unwrap();
    let one = image(
        d.path(),
        &[(Comp::None, tar_of(&[Item::File("one", b"1")]))],
        Some("one"),
    );
    let two = image(
        d.path(),
        &[(Comp::Zstd, tar_of(&[Item::File("two", b"2")]))],
        Some("v2:rc/1"),
    );
    write_index(d.path(), &[one, two]);
    assert!(load_oci(d.path(), Some("v2:rc/1"))
        .unwrap()
        .tree
        .get("two")
        .is_some());
    assert!(load_oci(d.path(), Some("one"))
        .unwrap()
        .tree
        .get("one")
        .is_some());
    let e = format!("{:#}", load_oci(d.path(), None).unwrap_err());
    assert!(
        e.contains("2 manifests") && e.contains("one, v2:rc/1"),
        "{e}"
    );
    let e = format!("{:#}", load_oci(d.path(), Some("three")).unwrap_err());
    assert!(e.contains("no manifest tagged `three`"), "{e}");
}

#[test]
fn nested_index_resolves_to_linux_amd64() {
    let d = tempfile::tempdir().unwrap();
    let arm = image(
        d.path(),
        &[(Comp::None, tar_of(&[Item::File("arm", b"")]))],
        None,
    );
    let amd = image(
        d.path(),
        &[(Comp::None, tar_of(&[Item::File("amd", b"")]))],
        None,
    );
    let mut arm = arm;
    arm["platform"] = json!({"architecture": "arm64", "os": "linux"});
    let mut amd = amd;
    amd["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let idx = json!({"schemaVersion": 2, "manifests": [arm, amd]});
    let mut top = blob(
        d.path(),
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&idx).unwrap(),
    );
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "multi"});
    write_index(d.path(), &[top]);
    let l = load_oci(d.path(), Some("multi")).unwrap();
    assert!(l.tree.get("amd").is_some() && l.tree.get("arm").is_none());
}

/// Builds the three-layer layout, lets `corrupt` change it, and returns the load error.
fn refusal(corrupt: impl FnOnce(&Path, &serde_json::Value)) -> String {
    let d = tempfile::tempdir().unwrap();
    let m = layout(d.path(), &three_layers());
    corrupt(d.path(), &m);
    format!(
        "{:#}",
        load_oci(d.path(), None).expect_err("must be refused")
    )
}

/// The path of the `i`-th layer blob of manifest `m`.
fn layer_path(dir: &Path, m: &serde_json::Value, i: usize) -> (std::path::PathBuf, String) {
    let mbytes = std::fs::read(
        dir.join("blobs/sha256")
            .join(&m["digest"].as_str().unwrap()[7..]),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&mbytes.unwrap()).unwrap();
    let digest = manifest["layers"][i]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (dir.join("blobs/sha256").join(&digest[7..]), digest)
}

#[test]
fn layer_digest_mismatch_is_refused_naming_the_blob() {
    let mut digest = String::new();
    let e = refusal(|dir, m| {
        let (p, dg) = layer_path(dir, m, 1);
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&p, bytes).unwrap();
        digest = dg;
    });
    assert!(e.contains("digest mismatch") && e.contains(&digest), "{e}");
}

#[test]
fn layer_size_mismatch_is_refused() {
    let e = refusal(|dir, m| {
        let (p, _) = layer_path(dir, m, 0);
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(b"extra").unwrap();
    });
    assert!(e.contains("bytes, its descriptor says"), "{e}");
}

#[test]
fn missing_blob_and_bad_index_are_refused() {
    let e = refusal(|dir, m| {
        std::fs::remove_file(layer_path(dir, m, 2).0).unwrap();
    });
    assert!(e.contains("opening blob"), "{e}");
    let e = refusal(|dir, _| std::fs::write(dir.join("index.json"), b"{").unwrap());
    assert!(e.contains("index.json"), "{e}");
    let e = refusal(|dir, _| {
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"2.0"}"#).unwrap()
    });
    assert!(e.contains("imageLayoutVersion"), "{e}");
}

/// A layout whose single layer is `tar`, loaded.
fn load_one(items: &[Item]) -> anyhow::Result<Loaded> {
    let d = tempfile::tempdir().unwrap();
    layout(d.path(), &[(Comp::Gzip, tar_of(items))]);
    let r = load_oci(d.path(), None);
    drop(d);
    r
}

#[test]
fn path_escapes_are_refused() {
    let table: [(&[Item], &str); 4] = [
        (&[Item::Raw(b"../evil", b'0', b"x")], ".."),
        (&[Item::Raw(b"etc/../../evil", b'0', b"x")], ".."),
        (&[Item::Raw(b"etc/.wh..", b'0', b"")], "whiteout"),
        (
            &[Item::Symlink("lib", "/tmp"), Item::File("lib/evil", b"x")],
            "symlink",
        ),
    ];
    for (items, needle) in table {
        let e = format!("{:#}", load_one(items).expect_err(needle));
        assert!(e.contains(needle), "{needle}: {e}");
    }
}

#[test]
fn hardlinks_across_layers() {
    let d = tempfile::tempdir().unwrap();
    let base = tar_of(&[
        Item::File("bin/busybox", b"bb"),
        Item::File("bin/gone", b"g"),
    ]);
    let up = tar_of(&[Item::Link("bin/sh", "bin/busybox")]);
    layout(d.path(), &[(Comp::None, base.clone()), (Comp::Zstd, up)]);
    let l = load_oci(d.path(), None).unwrap();
    assert!(
        matches!(&l.tree.get("bin/sh").unwrap().kind, Kind::Hardlink { target } if target == "bin/busybox")
    );
    assert_eq!(text(&l, "bin/sh"), "bb");

    let table: [(&[Item], &str); 2] = [
        (
            &[Item::Link("bin/ls", "bin/gone")],
            "later layer removed or replaced",
        ),
        (
            &[Item::Link("bin/ls", "bin/nothing")],
            "not in this layer or a lower one",
        ),
    ];
    for (items, needle) in table {
        let d = tempfile::tempdir().unwrap();
        let top = tar_of(&[Item::File("bin/.wh.gone", b"")]);
        layout(
            d.path(),
            &[
                (Comp::None, base.clone()),
                (Comp::None, tar_of(items)),
                (Comp::Gzip, top),
            ],
        );
        let e = format!("{:#}", load_oci(d.path(), None).unwrap_err());
        assert!(e.contains(needle), "{needle}: {e}");
    }
}

/// Compressed layers hash their decompressed stream; an uncompressed layer's blob digest is
/// its diff_id (hashed once): either way a wrong diff_id is refused.
#[test]
fn diff_id_mismatch_is_refused() {
    for comp in [Comp::Gzip, Comp::None] {
        diff_id_mismatch(comp);
    }
}

fn diff_id_mismatch(comp: Comp) {
    let d = tempfile::tempdir().unwrap();
    let tar = tar_of(&[Item::File("a", b"a")]);
    let desc = layer_blob(d.path(), comp, &tar);
    let config = json!({"rootfs": {"type": "layers", "diff_ids": [sha(b"other")]}});
    let c = blob(
        d.path(),
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let m = json!({"schemaVersion": 2, "config": c, "layers": [desc]});
    let md = blob(
        d.path(),
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&m).unwrap(),
    );
    write_index(d.path(), &[md]);
    let e = format!("{:#}", load_oci(d.path(), None).unwrap_err());
    assert!(e.contains("diff_id"), "{comp:?}: {e}");
}
