//! GPT parsing and partition discovery checked against disks written by `sfdisk`.
//!
//! `sfdisk_gpt_parses` needs only sfdisk; the loop-device tests also need root and losetup.

mod common;

use std::fs::{self, File};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{require_root, require_tool, unique, Loop, TempDir};
use nodeimg_init::block;
use nodeimg_init::discover::{self, Layout};
use nodeimg_init::gpt;
use nodeimg_init::guid::{Guid, DPS_ROOT_VERITY_X86_64, DPS_ROOT_X86_64};

const LINUX_DATA: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

/// A PARTUUID unique to this test run (so parallel runs on one host never collide).
fn fresh_guid(tag: &str) -> Guid {
    let mut bytes = [0u8; 16];
    for (i, b) in unique(tag).bytes().enumerate() {
        bytes[i % 16] = bytes[i % 16].wrapping_mul(31).wrapping_add(b);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Guid(bytes)
}

/// Writes an 8 MiB GPT disk image with sfdisk: partition 2 = data, partition 3 = hash.
fn make_disk(dir: &Path, data: (Guid, &str), hash: (Guid, Guid)) -> std::path::PathBuf {
    let img = dir.join("disk.img");
    File::create(&img).unwrap().set_len(8 << 20).unwrap();
    let script = format!(
        "label: gpt\nunit: sectors\n\
         start=2048, size=2048, type={LINUX_DATA}\n\
         start=4096, size=4096, type={}, uuid={}\n\
         start=8192, size=2048, type={}, uuid={}\n",
        data.1, data.0, hash.1, hash.0
    );
    let mut child = Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "sfdisk failed for:\n{script}"
    );
    img
}

#[test]
fn sfdisk_gpt_parses() {
    if !require_tool("sfdisk_gpt_parses", "sfdisk") {
        return;
    }
    let dir = TempDir::new("gpt");
    let (d, h) = (fresh_guid("d"), fresh_guid("h"));
    let img = make_disk(
        &dir.0,
        (d, &DPS_ROOT_X86_64.to_string()),
        (h, DPS_ROOT_VERITY_X86_64),
    );
    let file = File::open(&img).unwrap();
    let header = gpt::parse_header(&block::read_exact_at(&file, 512, 512).unwrap()).unwrap();
    assert_eq!(
        (header.my_lba, header.entries_lba, header.num_entries),
        (1, 2, 128)
    );
    let array = block::read_exact_at(&file, 1024, 128 * 128).unwrap();
    let parts = gpt::parse_entries(&header, &array).unwrap();
    let summary: Vec<(u32, Guid, u64, u64)> = parts
        .iter()
        .map(|p| (p.number, p.type_guid, p.first_lba, p.last_lba))
        .collect();
    assert_eq!(
        summary,
        [
            (1, Guid::parse(LINUX_DATA).unwrap(), 2048, 4095),
            (2, DPS_ROOT_X86_64, 4096, 8191),
            (3, DPS_ROOT_VERITY_X86_64, 8192, 10239),
        ]
    );
    assert_eq!((parts[1].part_guid, parts[2].part_guid), (d, h));
    // The backup header in the last LBA must parse too and point back at LBA 1.
    let last = (8u64 << 20) / 512 - 1;
    let backup = gpt::parse_header(&block::read_exact_at(&file, last * 512, 512).unwrap()).unwrap();
    assert_eq!((backup.my_lba, backup.alternate_lba), (last, 1));
}

fn loop_prerequisites(test: &str) -> bool {
    require_root(test) && require_tool(test, "sfdisk") && require_tool(test, "losetup")
}

#[test]
fn finds_partitions_on_a_loop_device_by_partuuid() {
    if !loop_prerequisites("finds_partitions_on_a_loop_device_by_partuuid") {
        return;
    }
    let dir = TempDir::new("disc");
    let (d, h) = (fresh_guid("d"), fresh_guid("h"));
    let img = make_disk(
        &dir.0,
        (d, &DPS_ROOT_X86_64.to_string()),
        (h, DPS_ROOT_VERITY_X86_64),
    );
    let lo = Loop::attach(&img, true);
    let found = discover::wait_for_root(
        &Layout::default(),
        d,
        h,
        Duration::from_secs(5),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let name = lo.name();
    assert_eq!(
        (found.data.name.as_str(), found.hash.name.as_str()),
        (&*format!("{name}p2"), &*format!("{name}p3"))
    );
    assert_eq!(found.data.path, Path::new("/dev").join(format!("{name}p2")));
    assert_eq!(
        (found.data.size_bytes, found.hash.size_bytes),
        (4096 * 512, 2048 * 512)
    );
    let sysfs_dev = fs::read_to_string(format!("/sys/class/block/{name}p3/dev")).unwrap();
    assert_eq!(found.hash.dev.to_string(), sysfs_dev.trim());
    assert!(!found.by_type);
}

#[test]
fn reports_a_partition_with_the_wrong_type() {
    if !loop_prerequisites("reports_a_partition_with_the_wrong_type") {
        return;
    }
    let dir = TempDir::new("type");
    let (d, h) = (fresh_guid("d"), fresh_guid("h"));
    let img = make_disk(&dir.0, (d, LINUX_DATA), (h, DPS_ROOT_VERITY_X86_64));
    let _lo = Loop::attach(&img, true);
    let err = discover::wait_for_root(
        &Layout::default(),
        d,
        h,
        Duration::from_secs(5),
        &mut |_| {},
    )
    .unwrap_err();
    let want = format!("has type {LINUX_DATA}, expected DPS root-x86-64 {DPS_ROOT_X86_64}");
    assert!(err.to_string().contains(&want), "{err}");
}

#[test]
fn missing_partitions_time_out_with_their_partuuids() {
    // An empty sysfs directory: no disks, so neither PARTUUIDs nor the DPS fallback can match.
    let dir = TempDir::new("empty");
    let layout = Layout {
        sys_block: dir.0.clone(),
        dev_dir: dir.0.clone(),
    };
    let (d, h) = (fresh_guid("d"), fresh_guid("h"));
    let mut waited = None;
    let start = std::time::Instant::now();
    let err = discover::wait_for_root(&layout, d, h, Duration::from_millis(300), &mut |why| {
        waited = Some(why.to_string())
    })
    .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(300));
    let text = err.to_string();
    assert!(
        text.contains(&format!("data partition PARTUUID {d} not found")),
        "{text}"
    );
    assert!(text.contains("waited 0s"), "{text}");
    assert!(waited.is_some_and(|w| w.contains(&h.to_string())));
}
