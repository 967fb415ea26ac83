//! End-to-end: build the busybox fixture and check every artifact with the real tools
//! (sfdisk, veritysetup, fsck.erofs), reproducibility across environments, and refusals.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nodeimg_tests::*;

/// One fixture build shared by the tests in this file: (tempdir, output dir, tar).
fn built() -> Option<&'static (tempfile::TempDir, PathBuf, PathBuf)> {
    static B: OnceLock<Option<(tempfile::TempDir, PathBuf, PathBuf)>> = OnceLock::new();
    B.get_or_init(|| {
        let tar = fixture_tar()?;
        let d = tempfile::tempdir().unwrap();
        let cfg = fixture_config(d.path(), &tar, "");
        let out = d.path().join("out");
        let r = run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert_ok(&r, "nodeimg build");
        Some((d, out, tar))
    })
    .as_ref()
}

fn part(m: &serde_json::Value, name: &str) -> (u64, u64) {
    let p = m["disk"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap();
    (p["offset"].as_u64().unwrap(), p["size"].as_u64().unwrap())
}

#[test]
fn outputs_and_sums_are_consistent() {
    let Some((_, out, _)) = built() else { return };
    let names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "SHA256SUMS",
            "disk.raw",
            "manifest.json",
            "sbom.cdx.json",
            "uki.efi"
        ],
        "no staging leftovers"
    );
    let r = run_tool(
        Command::new("sha256sum")
            .arg("-c")
            .arg("SHA256SUMS")
            .current_dir(out),
    );
    assert!(String::from_utf8_lossy(&r.stdout).matches(": OK").count() == 4);
    let m = manifest(out);
    assert_eq!(m["schema"], "nodeimg.manifest/v1");
    assert!(m["kernel"]["cmdline"]
        .as_str()
        .unwrap()
        .starts_with(&format!(
            "roothash={} ",
            m["verity"]["root_hash"].as_str().unwrap()
        )));
    assert!(
        m["stub"]["version"].as_str().unwrap().starts_with("252"),
        "{}",
        m["stub"]
    );
}

#[test]
fn sfdisk_sees_dps_types_and_derived_uuids() {
    let Some((_, out, _)) = built() else { return };
    if !have_tool("sfdisk") {
        return;
    }
    let r = run_tool(
        Command::new("sfdisk")
            .arg("--json")
            .arg(out.join("disk.raw")),
    );
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let parts = j["partitiontable"]["partitions"].as_array().unwrap();
    let m = manifest(out);
    let rh = m["verity"]["root_hash"].as_str().unwrap();
    let uuid = |h: &str| {
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
        .to_uppercase()
    };
    assert_eq!(j["partitiontable"]["label"], "gpt");
    assert_eq!(parts.len(), 3);
    let want = [
        ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", None),
        (
            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
            Some(uuid(&rh[..32])),
        ),
        (
            "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5",
            Some(uuid(&rh[32..])),
        ),
    ];
    for (p, (ty, id)) in parts.iter().zip(want) {
        assert_eq!(p["type"], ty);
        if let Some(id) = id {
            assert_eq!(p["uuid"], id.as_str());
        }
        assert_eq!(p["start"].as_u64().unwrap() % 2048, 0, "1 MiB aligned: {p}");
    }
    let v = Command::new("sfdisk")
        .arg("--verify")
        .arg(out.join("disk.raw"))
        .output()
        .unwrap();
    assert_ok(&v, "sfdisk --verify");
}

#[test]
fn veritysetup_verifies_and_formats_identically() {
    let Some((d, out, _)) = built() else { return };
    if !have_tool("veritysetup") {
        return;
    }
    let m = manifest(out);
    let v = &m["verity"];
    let disk = out.join("disk.raw");
    let (ro, rs) = part(&m, "root-x86-64");
    let (ho, hs) = part(&m, "root-x86-64-verity");
    let data_len = v["data_blocks"].as_u64().unwrap() * 4096;
    assert!(data_len <= rs);
    let tmp = d.path().join("vs");
    std::fs::create_dir_all(&tmp).unwrap();
    let (data, hash) = (tmp.join("data"), tmp.join("hash"));
    extract(&disk, ro, data_len, &data);
    extract(&disk, ho, hs, &hash);
    let rh = v["root_hash"].as_str().unwrap();
    run_tool(
        Command::new("veritysetup")
            .arg("verify")
            .arg(&data)
            .arg(&hash)
            .arg(rh),
    );
    // Same salt and UUID → veritysetup writes exactly our hash partition content.
    let theirs = tmp.join("theirs");
    let r = run_tool(
        Command::new("veritysetup")
            .args([
                "format",
                "--hash=sha256",
                "--data-block-size=4096",
                "--hash-block-size=4096",
            ])
            .arg(format!("--salt={}", v["salt"].as_str().unwrap()))
            .arg(format!("--uuid={}", v["uuid"].as_str().unwrap()))
            .arg(&data)
            .arg(&theirs),
    );
    assert!(
        String::from_utf8_lossy(&r.stdout).contains(rh),
        "veritysetup root hash differs:\n{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let theirs = std::fs::read(&theirs).unwrap();
    let ours = std::fs::read(&hash).unwrap();
    assert_eq!(
        &ours[..theirs.len()],
        &theirs[..],
        "hash partition differs from veritysetup format"
    );
    assert!(
        ours[theirs.len()..].iter().all(|&b| b == 0),
        "padding after the tree is zero"
    );
}

#[test]
fn fsck_erofs_extract_reproduces_the_input_tree() {
    let Some((d, out, tar)) = built() else { return };
    if !have_tool("fsck.erofs") || !have_root() {
        return;
    }
    let m = manifest(out);
    let (ro, rs) = part(&m, "root-x86-64");
    let img = d.path().join("root.erofs");
    extract(&out.join("disk.raw"), ro, rs, &img);
    run_tool(Command::new("fsck.erofs").arg(&img));
    let x = d.path().join("extracted");
    run_tool(
        Command::new("fsck.erofs")
            .arg(format!("--extract={}", x.display()))
            .arg("--preserve")
            .arg(&img),
    );
    let epoch = m["image"]["source_date_epoch"].as_u64().unwrap();
    compare_trees(tar, &x, epoch);
}

/// Loads both with nodeimg's readers and compares entry by entry, contents included.
fn compare_trees(tar: &Path, dir: &Path, epoch: u64) {
    use builder::rootfs::{load, Kind};
    use image_config::RootfsSource;
    let work = tempfile::tempdir().unwrap();
    let a = load(
        &RootfsSource::Tar(tar.to_path_buf()),
        epoch,
        work.path(),
        None,
    )
    .unwrap()
    .tree;
    let b = load(
        &RootfsSource::Directory(dir.to_path_buf()),
        epoch,
        work.path(),
        None,
    )
    .unwrap()
    .tree;
    assert_eq!(a.entries.len(), b.entries.len(), "entry count");
    for (x, y) in a.entries.iter().zip(&b.entries) {
        let strip = |e: &builder::rootfs::Entry| {
            let mut e = e.clone();
            if let Kind::File { data, .. } = &mut e.kind {
                *data = builder::rootfs::DataRef(0);
            }
            e
        };
        // The extracted root directory's own metadata comes from the extraction target.
        if x.path.is_empty() {
            continue;
        }
        assert_eq!(strip(x), strip(y), "entry /{}", x.path);
        if matches!(x.kind, Kind::File { .. }) {
            assert!(
                a.read_file(&x.path).unwrap() == b.read_file(&y.path).unwrap(),
                "content of /{}",
                x.path
            );
        }
    }
}
