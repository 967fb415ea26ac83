//! Tier 3: QEMU + OVMF (TCG) boots of fixture images built by nodeimg. nodeimg-init must verify
//! the root against the UKI's roothash= and switch to it; a corrupted root must stop the boot
//! with nodeimg-init's verity error. Every boot runs under `nodeimg boot --timeout`.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nodeimg_tests::*;

/// Builds the fixture with `extra` config into a fresh dir; returns (tempdir, output dir).
fn build(extra: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let tar = fixture_tar()?;
    if !have_tool("qemu-system-x86_64") {
        return None;
    }
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture_config(d.path(), &tar, extra);
    let out = d.path().join("out");
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "nodeimg build",
    );
    Some((d, out))
}

/// Boots `disk` (300 s limit) and returns (exit ok, console log).
fn boot(disk: &Path, expect: &[&str]) -> (bool, String) {
    boot_expect(disk, &disk.with_extension("console.log"), 300, expect)
}

#[test]
fn boot_read_only_root_is_verified_and_switched_to() {
    let Some((_d, out)) = build("") else { return };
    let (ok, console) = boot(
        &out.join("disk.raw"),
        &[
            "NODEIMG-FIXTURE-BOOTED",
            "root=/dev/mapper/root / erofs ro",
            "NODEIMG-FIXTURE-RO-OK",
        ],
    );
    assert!(ok, "boot failed");
    assert!(console.contains("nodeimg-init: root verified"), "{console}");
}

#[test]
fn boot_volatile_overlay_root_is_writable() {
    let Some((_d, out)) = build("\n[root]\nmode = \"volatile-overlay\"\n") else {
        return;
    };
    let (ok, _) = boot(
        &out.join("disk.raw"),
        &["NODEIMG-FIXTURE-BOOTED", "NODEIMG-FIXTURE-WRITABLE"],
    );
    assert!(ok, "boot failed");
}

#[test]
fn boot_fails_with_a_verity_error_when_one_root_byte_flips() {
    let Some((_d, out)) = build("") else { return };
    let m = manifest(&out);
    let root = m["disk"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "root-x86-64")
        .unwrap()
        .clone();
    let disk = out.join("disk.raw");
    // A byte of the erofs superblock (read at mount): verity must reject the block.
    let at = root["offset"].as_u64().unwrap() + 1024 + 40;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
    drop(f);
    let (ok, console) = boot(&disk, &["NODEIMG-FIXTURE-BOOTED"]);
    assert!(!ok, "a corrupted root booted");
    assert!(
        console.contains("nodeimg-init: error: verity"),
        "no verity error on the console:\n{console}"
    );
    assert!(
        !console.contains("NODEIMG-FIXTURE-BOOTED"),
        "the fixture's init ran on a corrupted root"
    );
}
