//! ESP and GPT cross-checks with the real tools: fsck.vfat (dosfstools), mdir/mcopy (mtools),
//! sfdisk (fdisk). A missing tool skips loudly, or fails under `NODEIMG_REQUIRE_TOOLS=1`.

use nodeimg_tests::noise;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use builder::disk::{self, PartSpec};
use builder::esp;

const MIB: u64 = 1024 * 1024;
const EPOCH: u64 = 1_700_000_001;

/// The path of `name`, or `None` after a loud skip (a failure under NODEIMG_REQUIRE_TOOLS=1).
fn tool(name: &str) -> Option<PathBuf> {
    let found = builder::tool::which(name);
    if found.is_none() {
        if std::env::var("NODEIMG_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is missing (NODEIMG_REQUIRE_TOOLS=1); scripts/setup.sh installs it");
        }
        eprintln!("SKIP: {name} is missing; scripts/setup.sh installs it");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.env("MTOOLS_SKIP_CHECK", "1").output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn build_esp(path: &Path, uki: &[u8]) {
    let files: [(&str, &[u8]); 2] = [
        ("EFI/BOOT/BOOTX64.EFI", uki),
        ("EFI/nodeimg/VERSION", b"1\n"),
    ];
    esp::build(path, 64 * MIB, &files, 0x5eed_0001, "ESP", EPOCH).unwrap();
}

#[test]
fn esp_passes_fsck_and_mtools_reads_it_back() {
    let (Some(fsck), Some(mcopy), Some(mdir)) = (tool("fsck.vfat"), tool("mcopy"), tool("mdir"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let uki = noise(5 * MIB as usize + 123, 1);
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
    build_esp(&a, &uki);
    build_esp(&b, &uki);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "two builds differ"
    );

    let out = run(Command::new(&fsck).arg("-n").arg("-v").arg(&a));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("32 bit entries"), "not FAT32: {text}");

    let listing = run(Command::new(&mdir)
        .arg("-i")
        .arg(&a)
        .args(["-b", "::/EFI/BOOT"]));
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout).trim(),
        "::/EFI/BOOT/BOOTX64.EFI"
    );
    let label = run(Command::new(&mdir).arg("-i").arg(&a).arg("::/"));
    let label = String::from_utf8_lossy(&label.stdout);
    assert!(
        label.contains("Volume in drive : is ESP") && label.contains("5EED-0001"),
        "{label}"
    );
    assert!(
        label.contains("2023-11-14  22:13"),
        "timestamps from the epoch: {label}"
    );

    let back = dir.path().join("back.efi");
    run(Command::new(&mcopy)
        .arg("-n")
        .arg("-i")
        .arg(&a)
        .arg("::/EFI/BOOT/BOOTX64.EFI")
        .arg(&back));
    assert!(
        std::fs::read(&back).unwrap() == uki,
        "mcopy read back different bytes"
    );
    let ours = esp::read_file(std::fs::File::open(&a).unwrap(), "EFI/BOOT/BOOTX64.EFI").unwrap();
    assert!(ours == uki);
}

struct Sources {
    _dir: tempfile::TempDir,
    disk: PathBuf,
    parts: Vec<PartSpec>,
    uki: Vec<u8>,
}

fn sources() -> Sources {
    let dir = tempfile::tempdir().unwrap();
    let uki = noise(2 * MIB as usize, 2);
    let esp_img = dir.path().join("esp.img");
    build_esp(&esp_img, &uki);
    let root = dir.path().join("root.erofs");
    std::fs::write(&root, noise(3 * MIB as usize + 17, 3)).unwrap();
    let verity = dir.path().join("root.verity");
    std::fs::write(&verity, noise(40_960, 4)).unwrap();
    let hash = disk::guid_from_str("5fb1aa9e-0a7c-2c1b-8d0d-0fd1b1a1c1d1").unwrap();
    let parts = vec![
        PartSpec {
            type_guid: disk::TYPE_ESP,
            unique_guid: disk::guid_from_str("a1b2c3d4-0000-4000-8000-000000000001").unwrap(),
            name: "esp".into(),
            source: disk::Source::File(esp_img),
            attrs: 0,
        },
        PartSpec {
            type_guid: disk::TYPE_ROOT_X86_64,
            unique_guid: hash,
            name: "root-x86-64".into(),
            source: disk::Source::File(root),
            attrs: disk::ATTR_READ_ONLY,
        },
        PartSpec {
            type_guid: disk::TYPE_ROOT_VERITY_X86_64,
            unique_guid: disk::guid_from_str("e1f10111-2131-4151-6171-8191a1b1c1d1").unwrap(),
            name: "root-x86-64-verity".into(),
            source: disk::Source::File(verity),
            attrs: disk::ATTR_READ_ONLY,
        },
    ];
    Sources {
        disk: dir.path().join("disk.raw"),
        _dir: dir,
        parts,
        uki,
    }
}

const DISK_GUID: &str = "0b0e5a3c-1d2e-4f60-8a9b-c0d1e2f30415";

#[test]
fn sfdisk_sees_the_expected_gpt() {
    let (Some(sfdisk), Some(mcopy)) = (tool("sfdisk"), tool("mcopy")) else {
        return;
    };
    let s = sources();
    let disk_guid = disk::guid_from_str(DISK_GUID).unwrap();
    let placed = disk::assemble(&s.disk, &s.parts, disk_guid, disk::DEFAULT_ALIGN).unwrap();

    let json = run(Command::new(&sfdisk).arg("--json").arg(&s.disk));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let t = &v["partitiontable"];
    assert_eq!(t["label"], "gpt");
    assert_eq!(t["id"], DISK_GUID.to_uppercase());
    assert_eq!(t["sectorsize"], 512);
    let got = t["partitions"].as_array().unwrap();
    assert_eq!(got.len(), 3);
    for ((g, spec), p) in got.iter().zip(&s.parts).zip(&placed) {
        assert_eq!(
            g["type"],
            disk::guid_to_string(&spec.type_guid).to_uppercase()
        );
        assert_eq!(
            g["uuid"],
            disk::guid_to_string(&spec.unique_guid).to_uppercase()
        );
        assert_eq!(g["name"], spec.name.as_str());
        assert_eq!(g["start"], p.first_lba);
        assert_eq!(g["size"], p.size / 512);
        assert_eq!(g["start"].as_u64().unwrap() % 2048, 0, "1 MiB aligned");
        let attrs = if spec.attrs == disk::ATTR_READ_ONLY {
            Some("GUID:60")
        } else {
            None
        };
        assert_eq!(g["attrs"].as_str(), attrs);
    }

    let verify = run(Command::new(&sfdisk).arg("--verify").arg(&s.disk));
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(text.contains("No errors detected"), "{text}");
    assert!(
        verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The ESP inside the disk is readable at its offset.
    let back = s.disk.with_file_name("back.efi");
    let img = format!("{}@@{}", s.disk.display(), placed[0].offset);
    run(Command::new(&mcopy)
        .args(["-n", "-i", &img, "::/EFI/BOOT/BOOTX64.EFI"])
        .arg(&back));
    assert!(std::fs::read(back).unwrap() == s.uki);
}

#[test]
fn disk_is_deterministic_and_holds_the_sources() {
    let s = sources();
    let disk_guid = disk::guid_from_str(DISK_GUID).unwrap();
    let placed = disk::assemble(&s.disk, &s.parts, disk_guid, disk::DEFAULT_ALIGN).unwrap();
    let first = std::fs::read(&s.disk).unwrap();
    disk::assemble(&s.disk, &s.parts, disk_guid, disk::DEFAULT_ALIGN).unwrap();
    assert!(
        first == std::fs::read(&s.disk).unwrap(),
        "two assemblies differ"
    );
    for (spec, p) in s.parts.iter().zip(&placed) {
        let disk::Source::File(path) = &spec.source else {
            unreachable!("all test sources are files")
        };
        let src = std::fs::read(path).unwrap();
        let at = p.offset as usize;
        assert!(
            first[at..at + src.len()] == src[..],
            "{} contents",
            spec.name
        );
    }
    let listed = disk::read(std::fs::File::open(&s.disk).unwrap()).unwrap();
    let names: Vec<_> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["esp", "root-x86-64", "root-x86-64-verity"]);
}
