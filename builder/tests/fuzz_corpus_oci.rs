//! Replays `fuzz/corpus/oci/` (seeds written by `write_oci_seeds` below; plus cargo-fuzz
//! finds) through the body of the `oci` fuzz target: whole OCI layouts in one input, digests
//! filled in by the harness (see the body's docs for the format).

#[path = "../../fuzz/fuzz_targets/body/oci.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

use std::io::Write;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn oci_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "oci",
        3,
        KNOWN_CRASHES,
        body::run,
    );
}

const INDEX: &str = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"@M@","size":@MS@,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}"#;
const CONFIG_MT: &str = "application/vnd.oci.image.config.v1+json";

fn manifest(layer_types: &[&str]) -> String {
    let layers: Vec<String> = layer_types
        .iter()
        .enumerate()
        .map(|(i, mt)| format!(r#"{{"mediaType":"{mt}","digest":"@L{i}@","size":@L{i}S@}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{CONFIG_MT}","digest":"@C@","size":@CS@}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

fn config(n: usize) -> String {
    let ids: Vec<String> = (0..n).map(|i| format!("\"@D{i}@\"")).collect();
    format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        ids.join(",")
    )
}

/// A tar of `(path, type, link target, contents)` items, deterministic.
fn tar_of(items: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, link, data) in items {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        if matches!(kind, tar::EntryType::Char) {
            h.set_device_major(5).unwrap();
            h.set_device_minor(1).unwrap();
        }
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn join(sections: &[&[u8]]) -> Vec<u8> {
    sections.join(body::SEP)
}

/// The seeds, by file name.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use tar::EntryType::{Char, Directory, Link, Regular, Symlink};
    let base = tar_of(&[
        ("etc", Directory, "", b""),
        ("etc/hostname", Regular, "", b"node\n"),
        ("etc/gone", Regular, "", b"x"),
        ("opt", Directory, "", b""),
        ("opt/old", Regular, "", b"old"),
        ("usr", Directory, "", b""),
        ("usr/bin", Directory, "", b""),
        ("usr/bin/sh", Regular, "", b"#!"),
        ("bin", Symlink, "usr/bin", b""),
        ("usr/bin/sh2", Link, "usr/bin/sh", b""),
    ]);
    let top = tar_of(&[
        ("etc/.wh.gone", Regular, "", b""),
        ("opt/.wh..wh..opq", Regular, "", b""),
        ("opt/new", Regular, "", b"new"),
        ("dev", Directory, "", b""),
        ("dev/console", Char, "", b""),
    ]);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&top).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(top.as_slice(), 19).unwrap();
    // A layout of `layers` (media type suffix after `…layer.v1.`, blob), as one input.
    let layout = |layers: &[(&str, &[u8])]| {
        let types: Vec<String> = layers
            .iter()
            .map(|(t, _)| format!("application/vnd.oci.image.layer.v1.{t}"))
            .collect();
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        let (manifest, config) = (manifest(&types), config(layers.len()));
        let mut sections: Vec<&[u8]> =
            vec![INDEX.as_bytes(), manifest.as_bytes(), config.as_bytes()];
        sections.extend(layers.iter().map(|(_, blob)| *blob));
        join(&sections)
    };
    vec![
        ("one-layer", layout(&[("tar", &base)])),
        (
            "two-layers-gzip",
            layout(&[("tar", &base), ("tar+gzip", &gz)]),
        ),
        (
            "two-layers-zstd",
            layout(&[("tar", &base), ("tar+zstd", &zst)]),
        ),
    ]
}

/// Every seed is a loadable image with the expected tree, so the fuzzer starts deep.
#[test]
fn oci_seeds_load() {
    for (name, data) in seeds() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, work) = (dir.path().join("layout"), dir.path().join("work"));
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        body::write_layout(&layout, &data);
        let src = image_config::RootfsSource::Oci {
            dir: layout,
            tag: None,
        };
        let l =
            builder::rootfs::load(&src, 0, &work, None).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(l.tree.get("etc/hostname").is_some(), "{name}");
        let layered = name != "one-layer";
        assert_eq!(l.tree.get("etc/gone").is_none(), layered, "{name}");
        assert_eq!(l.tree.get("opt/old").is_none(), layered, "{name}");
        assert_eq!(l.tree.get("dev/console").is_some(), layered, "{name}");
    }
}

/// Writes the seeds: `NODEIMG_WRITE_FUZZ_SEEDS=1 cargo test -p builder --test
/// fuzz_corpus_oci -- --ignored write_oci_seeds`.
#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn write_oci_seeds() {
    if std::env::var_os("NODEIMG_WRITE_FUZZ_SEEDS").is_none() {
        eprintln!("SKIP: set NODEIMG_WRITE_FUZZ_SEEDS=1 to write the seeds");
        return;
    }
    let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), "oci");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds() {
        std::fs::write(dir.join(name), data).unwrap();
    }
}
