//! End-to-end OCI input: the fixture rootfs split into two layers (gzip, then zstd) with a
//! whiteout, an opaque directory and a replaced file, built with `oci = "DIR:TAG"`. The erofs
//! tree read back from disk.raw must equal the tree of the equivalent flat tar, and
//! `nodeimg diff` against a build of that tar must find no tree difference.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use builder::erofs::read::{FileRegion, Image};
use builder::rootfs::{load, Entry, Kind, Tree};
use image_config::RootfsSource;
use nodeimg_tests::*;
use serde_json::json;
use sha2::{Digest, Sha256};

const EPOCH: u64 = 1_700_000_000;

/// A header with `e`'s metadata; its xattrs go into a PAX extension appended first.
fn header(b: &mut tar::Builder<Vec<u8>>, e: &Entry) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(u32::from(e.perm));
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mtime(e.mtime);
    h.set_size(0);
    let pax: Vec<(String, &[u8])> = e
        .xattrs
        .iter()
        .map(|x| {
            let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(&x.name));
            (key, &x.value[..])
        })
        .collect();
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
    }
    h
}

/// Appends `e` (content from `tree`) to a tar; `content` overrides a file's bytes.
fn append(b: &mut tar::Builder<Vec<u8>>, tree: &Tree, e: &Entry, content: Option<&[u8]>) {
    let mut h = header(b, e);
    let path = if e.path.is_empty() {
        "."
    } else {
        e.path.as_str()
    };
    let t = tar::EntryType::new;
    match &e.kind {
        Kind::Dir => {
            h.set_entry_type(t(b'5'));
            b.append_data(&mut h, format!("{path}/"), std::io::empty())
                .unwrap();
        }
        Kind::File { .. } => {
            let data = content.map_or_else(|| tree.read_file(&e.path).unwrap(), <[u8]>::to_vec);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, data.as_slice()).unwrap();
        }
        Kind::Symlink { target } => {
            h.set_entry_type(t(b'2'));
            b.append_link(&mut h, path, std::ffi::OsStr::from_bytes(target))
                .unwrap();
        }
        Kind::Hardlink { target } => {
            h.set_entry_type(t(b'1'));
            b.append_link(&mut h, path, target).unwrap();
        }
        Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
            let c = if matches!(e.kind, Kind::CharDev { .. }) {
                b'3'
            } else {
                b'4'
            };
            h.set_entry_type(t(c));
            h.set_device_major(*major).unwrap();
            h.set_device_minor(*minor).unwrap();
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        }
        Kind::Fifo => {
            h.set_entry_type(t(b'6'));
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        }
        Kind::Socket => panic!("/{}: tar cannot hold sockets", e.path),
    }
}

/// A regular file entry (root-owned, 0644, at the epoch) for additions.
fn file_entry(path: &str) -> Entry {
    Entry {
        path: path.into(),
        kind: Kind::File {
            size: 0,
            data: builder::rootfs::DataRef(0),
        },
        perm: 0o644,
        uid: 0,
        gid: 0,
        mtime: EPOCH,
        xattrs: vec![],
    }
}

fn dir_entry(path: &str) -> Entry {
    Entry {
        kind: Kind::Dir,
        perm: 0o755,
        ..file_entry(path)
    }
}

fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().unwrap()
}

/// (layer 0, layer 1, the flat tar they amount to).
fn split(tree: &Tree) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (mut l0, mut l1, mut flat) = (
        tar::Builder::new(Vec::new()),
        tar::Builder::new(Vec::new()),
        tar::Builder::new(Vec::new()),
    );
    let upper = |e: &Entry| {
        e.path.starts_with("usr/lib/modules") || matches!(e.kind, Kind::Hardlink { .. })
    };
    for e in &tree.entries {
        append(&mut flat, tree, e, None);
        if e.path == "sbin/init" {
            append(&mut l0, tree, e, Some(b"#!/bin/sh\necho stale init\n"));
            append(&mut l1, tree, e, None);
        } else if upper(e) {
            append(&mut l1, tree, e, None);
        } else {
            append(&mut l0, tree, e, None);
        }
    }
    for (path, data) in [
        ("etc/stale", &b"removed by a whiteout"[..]),
        ("opt/junk/a", b"hidden by an opaque dir"),
    ] {
        append(&mut l0, tree, &file_entry(path), Some(data));
    }
    append(&mut l0, tree, &dir_entry("opt"), None);
    append(&mut l0, tree, &dir_entry("opt/junk"), None);
    append(&mut flat, tree, &dir_entry("opt"), None);
    append(&mut flat, tree, &dir_entry("opt/junk"), None);
    for b in [&mut l1, &mut flat] {
        append(b, tree, &file_entry("opt/junk/new"), Some(b"added on top"));
    }
    append(&mut l1, tree, &file_entry("etc/.wh.stale"), Some(b""));
    append(
        &mut l1,
        tree,
        &file_entry("opt/junk/.wh..wh..opq"),
        Some(b""),
    );
    (finish(l0), finish(l1), finish(flat))
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let d = sha(bytes);
    let p = dir.join("blobs/sha256").join(&d[7..]);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

/// Writes the OCI layout; returns the manifest digest.
fn write_layout(dir: &Path, l0: &[u8], l1: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(l0).unwrap();
    let mt = "application/vnd.oci.image.layer.v1.tar";
    let layers = [
        blob(dir, &format!("{mt}+gzip"), &gz.finish().unwrap()),
        blob(
            dir,
            &format!("{mt}+zstd"),
            &zstd::encode_all(l1, 3).unwrap(),
        ),
    ];
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(l0), sha(l1)]}});
    let c = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": c, "layers": layers});
    let mut md = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&m).unwrap(),
    );
    md["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [md.clone()]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    md["digest"].as_str().unwrap()[7..].to_string()
}

/// The erofs root of a built disk as a tree.
fn erofs_tree(disk: &Path) -> Tree {
    let f = std::fs::File::open(disk).unwrap();
    let gpt = builder::disk::read_table(&f).unwrap();
    let root = gpt
        .partitions
        .iter()
        .find(|p| p.type_guid == builder::disk::TYPE_ROOT_X86_64)
        .unwrap();
    let region = FileRegion {
        file: f.try_clone().unwrap(),
        offset: root.offset,
        len: root.size,
    };
    Image::open(region).unwrap().into_tree().unwrap()
}

fn content_sha(t: &Tree, e: &Entry) -> Option<String> {
    let Kind::File { data, .. } = e.kind else {
        return None;
    };
    let mut v = Vec::new();
    t.store.open(data).unwrap().read_to_end(&mut v).unwrap();
    Some(sha(&v))
}

/// Entry-by-entry equality (data refs ignored; hardlinks by kind, as they share an inode).
fn assert_same(want: &Tree, got: &Tree) {
    let paths = |t: &Tree| t.entries.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(want), paths(got));
    for (w, g) in want.entries.iter().zip(&got.entries) {
        let norm = |e: &Entry| match &e.kind {
            Kind::File { size, .. } => Entry {
                kind: Kind::File {
                    size: *size,
                    data: builder::rootfs::DataRef(0),
                },
                ..e.clone()
            },
            Kind::Hardlink { target } => Entry {
                kind: Kind::Hardlink {
                    target: target.clone(),
                },
                ..dir_entry(&e.path)
            },
            _ => e.clone(),
        };
        assert_eq!(norm(w), norm(g), "/{}", w.path);
        assert_eq!(
            content_sha(want, w),
            content_sha(got, g),
            "/{}: content",
            w.path
        );
    }
}

/// `nodeimg build CFG -o OUT`; returns OUT.
fn build(cfg: &Path, out: &Path) -> std::path::PathBuf {
    let r = run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_ok(&r, &format!("nodeimg build {}", cfg.display()));
    out.to_path_buf()
}

#[test]
fn two_layer_oci_image_builds_the_expected_tree() {
    let Some(fixture) = fixture_tar() else { return };
    let d = tempfile::tempdir().unwrap();
    let work = d.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let base = load(&RootfsSource::Tar(fixture.clone()), EPOCH, &work, None)
        .unwrap()
        .tree;
    let (l0, l1, flat) = split(&base);
    let layout = d.path().join("layout");
    let digest = write_layout(&layout, &l0, &l1);
    let flat_tar = d.path().join("flat.tar");
    std::fs::write(&flat_tar, &flat).unwrap();

    let cfg_dir = d.path().join("cfg");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let text = std::fs::read_to_string(fixture_config(&cfg_dir, &fixture, "")).unwrap();
    let needle = format!("tar = \"{}\"", fixture.display());
    let cfg = cfg_dir.join("oci.toml");
    let oci = format!("oci = \"{}:v1\"", layout.display());
    std::fs::write(&cfg, text.replace(&needle, &oci)).unwrap();
    let out = build(&cfg, &d.path().join("out-oci"));

    let m = manifest(&out);
    assert_eq!(m["inputs"]["rootfs"]["kind"], "oci");
    assert_eq!(
        m["inputs"]["rootfs"]["sha256"],
        digest.as_str(),
        "identity = manifest digest"
    );
    let want = load(&RootfsSource::Tar(flat_tar.clone()), EPOCH, &work, None)
        .unwrap()
        .tree;
    let got = erofs_tree(&out.join("disk.raw"));
    assert!(got.get("etc/stale").is_none() && got.get("opt/junk/a").is_none());
    assert_eq!(got.read_file("opt/junk/new").unwrap(), b"added on top");
    assert_eq!(
        got.read_file("sbin/init").unwrap(),
        base.read_file("sbin/init").unwrap()
    );
    assert_same(&want, &got);

    let out_flat = build(
        &fixture_config(&cfg_dir, &flat_tar, ""),
        &d.path().join("out-flat"),
    );
    let r = run_nodeimg(&["diff", out.to_str().unwrap(), out_flat.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&r.stdout);
    assert!(
        shown.contains("erofs: identical"),
        "same tree, other rootfs digest:\n{shown}"
    );
}
