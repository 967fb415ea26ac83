//! Creates real dm-verity devices through the init's ioctl code over loop devices.
//!
//! Needs root, `veritysetup`, `losetup` and a kernel with dm-verity; skips loudly otherwise
//! (NODEIMG_REQUIRE_ROOT / NODEIMG_REQUIRE_TOOLS / NODEIMG_REQUIRE_DM=1 turn skips into failures).

mod common;

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::{require_dm_verity, require_root, require_tool, run, unique, Loop, TempDir};
use nodeimg_init::activate::{self, VerityDevice};
use nodeimg_init::block::BlockDevice;
use nodeimg_init::cmdline::RootHash;

const DATA_BLOCKS: usize = 300;

fn prerequisites(test: &str) -> bool {
    require_root(test)
        && require_tool(test, "veritysetup")
        && require_tool(test, "losetup")
        && require_dm_verity(test)
}

/// Non-trivial content (every 4 KiB block differs) behind an erofs superblock header that
/// states the image is `DATA_BLOCKS` blocks of 4096 bytes (what open_verity checks the tree
/// covers).
fn data_bytes() -> Vec<u8> {
    let mut d: Vec<u8> = (0..DATA_BLOCKS * 4096)
        .map(|i| ((i / 4096) as u8) ^ ((i % 251) as u8))
        .collect();
    d[1024..1028].copy_from_slice(&0xE0F5_E1E2u32.to_le_bytes());
    d[1024 + 12] = 12;
    d[1024 + 36..1024 + 40].copy_from_slice(&(DATA_BLOCKS as u32).to_le_bytes());
    d
}

struct Setup {
    _dir: TempDir,
    data: Vec<u8>,
    roothash: String,
    data_loop: Loop,
    hash_loop: Loop,
}

fn setup() -> Setup {
    setup_with(&[])
}

/// `extra` goes to `veritysetup format` (e.g. `--data-blocks=N`).
fn setup_with(extra: &[&str]) -> Setup {
    let dir = TempDir::new("dm");
    let data = data_bytes();
    let data_file = dir.0.join("data.img");
    let hash_file = dir.0.join("hash.img");
    fs::write(&data_file, &data).unwrap();
    let out = run(Command::new("veritysetup")
        .args([
            "format",
            "--hash=sha256",
            "--data-block-size=4096",
            "--hash-block-size=4096",
        ])
        .args(extra)
        .arg(&data_file)
        .arg(&hash_file));
    let roothash = out
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("no root hash in veritysetup output: {out}"));
    let data_loop = Loop::attach(&data_file, false);
    let hash_loop = Loop::attach(&hash_file, false);
    Setup {
        _dir: dir,
        data,
        roothash,
        data_loop,
        hash_loop,
    }
}

fn sysfs_dev(lo: &Loop) -> BlockDevice {
    BlockDevice::from_sysfs(Path::new("/sys/class/block"), Path::new("/dev"), &lo.name()).unwrap()
}

/// Removes the dm device even when the test fails.
struct DmGuard(VerityDevice);

impl Drop for DmGuard {
    fn drop(&mut self) {
        if let Err(e) = activate::close_verity(&self.0) {
            eprintln!("cleanup: removing {}: {e}", self.0.name);
        }
    }
}

fn open(s: &Setup, roothash: &str, tag: &str) -> DmGuard {
    let rh = RootHash::parse(roothash).unwrap();
    let name = unique(tag);
    let dev = activate::open_verity(
        &name,
        &sysfs_dev(&s.data_loop),
        &sysfs_dev(&s.hash_loop),
        &rh,
    )
    .unwrap_or_else(|e| panic!("open_verity: {e}"));
    assert_eq!(dev.node, Path::new("/dev/mapper").join(&name));
    DmGuard(dev)
}

#[test]
fn correct_root_hash_reads_back_the_data() {
    if !prerequisites("correct_root_hash_reads_back_the_data") {
        return;
    }
    let s = setup();
    let dm = open(&s, &s.roothash, "good");
    let sysfs_size = fs::read_to_string(format!("/sys/dev/block/{}/size", dm.0.dev)).unwrap();
    assert_eq!(sysfs_size.trim(), (DATA_BLOCKS * 8).to_string());
    assert_eq!(
        fs::read_to_string(format!("/sys/dev/block/{}/ro", dm.0.dev))
            .unwrap()
            .trim(),
        "1"
    );
    let mut got = Vec::new();
    File::open(&dm.0.node)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(
        got == s.data,
        "data read through dm-verity differs from the data file"
    );
}

#[test]
fn wrong_root_hash_fails_activation_with_eio() {
    if !prerequisites("wrong_root_hash_fails_activation_with_eio") {
        return;
    }
    let s = setup();
    let mut wrong = s.roothash.clone().into_bytes();
    wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
    let rh = RootHash::parse(std::str::from_utf8(&wrong).unwrap()).unwrap();
    let name = unique("bad");
    // Reading the erofs superblock through the device (to check the tree covers the image)
    // is the first verified read: it fails, and the device is removed again.
    let err = activate::open_verity(
        &name,
        &sysfs_dev(&s.data_loop),
        &sysfs_dev(&s.hash_loop),
        &rh,
    )
    .expect_err("a wrong root hash activated");
    let text = err.to_string();
    assert!(
        text.contains("verity") && text.contains("failed verification") && text.contains("EIO"),
        "{text}"
    );
    assert!(
        !Path::new("/dev/mapper").join(&name).exists(),
        "device left behind"
    );
}

#[test]
fn a_tree_that_stops_short_of_the_erofs_image_is_refused() {
    if !prerequisites("a_tree_that_stops_short_of_the_erofs_image_is_refused") {
        return;
    }
    // A valid tree over the first 200 of the 300 blocks the erofs superblock claims.
    let s = setup_with(&["--data-blocks=200"]);
    let rh = RootHash::parse(&s.roothash).unwrap();
    let name = unique("short-tree");
    let err = activate::open_verity(
        &name,
        &sysfs_dev(&s.data_loop),
        &sysfs_dev(&s.hash_loop),
        &rh,
    )
    .expect_err("a tree covering 200 of 300 blocks activated");
    assert!(
        err.to_string().contains("its end would be unverified"),
        "{err}"
    );
    assert!(
        !Path::new("/dev/mapper").join(&name).exists(),
        "device left behind"
    );
}

#[test]
fn superblock_larger_than_the_data_device_is_refused() {
    if !prerequisites("superblock_larger_than_the_data_device_is_refused") {
        return;
    }
    let s = setup();
    let rh = RootHash::parse(&s.roothash).unwrap();
    let mut data = sysfs_dev(&s.data_loop);
    data.size_bytes -= 4096; // pretend the partition is one block short
    let err =
        activate::open_verity(&unique("short"), &data, &sysfs_dev(&s.hash_loop), &rh).unwrap_err();
    assert!(err.to_string().contains("data partition has"), "{err}");
}
