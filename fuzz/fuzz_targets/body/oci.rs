//! Body of the `oci` fuzz target, shared with the stable replay test
//! `builder/tests/fuzz_corpus_oci.rs` (included there by path): the OCI image layout reader
//! behind `builder::rootfs::load` (index → manifest → config → layers with whiteouts).
//! Errors are fine; a panic is a bug.
//!
//! The input is a whole layout in one byte string: sections separated by [`SEP`], in the order
//! `index.json`, image manifest, image config, then one section per layer blob. Random
//! mutations would almost never keep the SHA-256 digests right, so placeholders in the JSON
//! sections are replaced before the blobs are written (each blob is stored under its real
//! digest): `@L0@`…`@L9@` the layer blobs' `sha256:` digests, `@L0S@`… their sizes,
//! `@D0@`… their uncompressed (gzip or zstd, by magic) digests, `@C@`/`@CS@` the config's
//! digest and size, `@M@`/`@MS@` the manifest's.

#[path = "scratch.rs"]
mod scratch;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Separates the sections of an input.
pub const SEP: &[u8] = b"\n--8<--\n";
/// Decompressed bytes hashed for a `@Dn@` placeholder (bounds the harness, not the reader).
const MAX_DECOMPRESSED: u64 = 16 << 20;

/// Writes the layout that `data` describes to a temporary directory and loads it.
pub fn run(data: &[u8]) {
    let dir = scratch::dir("oci");
    let layout = dir.join("layout");
    let work = dir.join("work");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("creating the layout directory");
    std::fs::create_dir_all(&work).expect("creating the work directory");
    write_layout(&layout, data);
    let source = image_config::RootfsSource::Oci {
        dir: layout,
        tag: None,
    };
    if let Ok(loaded) = builder::rootfs::load(&source, 1_700_000_000, &work, None) {
        for entry in &loaded.tree.entries {
            let _ = loaded.tree.resolve(&entry.path);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Splits `data` into sections, fills in the placeholders and writes `oci-layout`,
/// `index.json` and every blob under `blobs/sha256/`.
pub fn write_layout(layout: &Path, data: &[u8]) {
    let mut sections = split(data);
    if sections.len() < 3 {
        sections.resize(3, Vec::new());
    }
    let (head, layers) = sections.split_at_mut(3);
    let [index, manifest, config] = head else {
        unreachable!("three sections")
    };
    let mut subst: Vec<(String, String)> = Vec::new();
    for (i, layer) in layers.iter().enumerate().take(10) {
        subst.push((format!("@L{i}@"), digest(layer)));
        subst.push((format!("@L{i}S@"), layer.len().to_string()));
        subst.push((format!("@D{i}@"), digest(&decompressed(layer))));
        put_blob(layout, layer);
    }
    let config = replace(config, &subst);
    subst.push(("@C@".into(), digest(&config)));
    subst.push(("@CS@".into(), config.len().to_string()));
    put_blob(layout, &config);
    let manifest = replace(manifest, &subst);
    subst.push(("@M@".into(), digest(&manifest)));
    subst.push(("@MS@".into(), manifest.len().to_string()));
    put_blob(layout, &manifest);
    let index = replace(index, &subst);
    std::fs::write(layout.join("index.json"), index).expect("writing index.json");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("writing oci-layout");
}

fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEP.len()).position(|w| w == SEP) {
        out.push(rest[..at].to_vec());
        rest = &rest[at + SEP.len()..];
    }
    out.push(rest.to_vec());
    out
}

fn replace(text: &[u8], subst: &[(String, String)]) -> Vec<u8> {
    let mut out = text.to_vec();
    for (from, to) in subst {
        let mut next = Vec::with_capacity(out.len());
        let mut rest = out.as_slice();
        while let Some(at) = rest.windows(from.len()).position(|w| w == from.as_bytes()) {
            next.extend_from_slice(&rest[..at]);
            next.extend_from_slice(to.as_bytes());
            rest = &rest[at + from.len()..];
        }
        next.extend_from_slice(rest);
        out = next;
    }
    out
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// The layer as the reader will see it uncompressed (gzip or zstd by magic; else as is).
fn decompressed(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let ok = if b.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(b)
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut out)
            .is_ok()
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(b)
            .and_then(|d| d.take(MAX_DECOMPRESSED).read_to_end(&mut out))
            .is_ok()
    } else {
        return b.to_vec();
    };
    if ok {
        out
    } else {
        b.to_vec()
    }
}

fn put_blob(layout: &Path, b: &[u8]) {
    let name = hex::encode(Sha256::digest(b));
    std::fs::write(layout.join("blobs/sha256").join(name), b).expect("writing a blob");
}
