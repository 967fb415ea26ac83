//! Tier 3, Secure Boot enforcing: images built with `[secure-boot]` (stubs 252, 254, 257 and
//! the default image) boot under OVMF's Secure Boot build with `nodeimg keygen --secure-boot`'s
//! VARS and swtpm; the kernel reports "Secure boot enabled" and PCR 4, 5, 7, 9, 11, 12, 13 equal
//! the manifest in both banks. The firmware refuses an unsigned UKI, a UKI signed by a key not
//! in db, and a signed UKI with one byte flipped ("Access Denied"), and `nodeimg boot` fails at
//! once, naming the refusal.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use nodeimg_tests::*;
use serde_json::Value;

/// One QEMU at a time (two cores).
static BOOT: Mutex<()> = Mutex::new(());

/// The kernel's line when Secure Boot is enforcing.
const ENFORCING: &str = "secureboot: Secure boot enabled";

fn ready() -> bool {
    fixture_tar().is_some()
        && have_tool("qemu-system-x86_64")
        && have_tool("swtpm")
        && have_file(
            Path::new("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"),
            "apt-get install ovmf",
        )
}

fn keygen(dir: &Path, extra: &[&str]) {
    let mut args = vec!["keygen", "--secure-boot", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    assert_ok(&run_nodeimg(&args), "keygen --secure-boot");
}

/// Builds `config` (an image.toml) into `dir/out`.
fn build(config: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("out");
    assert_ok(
        &run_nodeimg(&[
            "build",
            config.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]),
        "nodeimg build",
    );
    out
}

/// The fixture with `stub`, signed with `keys` (or unsigned with `None`).
fn fixture(dir: &Path, stub: &Path, keys: Option<&Path>) -> PathBuf {
    let tar = fixture_tar().expect("checked by ready()");
    std::fs::create_dir_all(dir).unwrap();
    let mut extra = format!("\n[uki]\nstub = \"{}\"\n", stub.display());
    if let Some(k) = keys {
        extra.push_str(&format!("\n[secure-boot]\nkeys = \"{}\"\n", k.display()));
    }
    build(&fixture_config(dir, &tar, &extra), dir)
}

/// `nodeimg boot DISK --secure-boot KEYS [--tpm --manifest M] --json`.
fn boot(disk: &Path, keys: &Path, manifest: Option<&Path>, expect: &str) -> (Output, Value) {
    let _one = BOOT.lock().unwrap_or_else(|e| e.into_inner());
    let log = disk.with_extension("console.log");
    let mut args = vec![
        "boot",
        disk.to_str().unwrap(),
        "--secure-boot",
        keys.to_str().unwrap(),
        "--accel",
        "tcg",
        "--timeout",
        "300",
        "--console-log",
        log.to_str().unwrap(),
        "--expect",
        expect,
        "--json",
    ];
    if let Some(m) = manifest {
        args.extend(["--tpm", "--manifest", m.to_str().unwrap()]);
    }
    let out = run_nodeimg(&args);
    eprintln!("--- stderr ---\n{}", String::from_utf8_lossy(&out.stderr));
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

/// Boots a signed build with Secure Boot enforcing and checks every PCR the manifest pins.
fn enforcing_boot_matches_manifest(out: &Path, keys: &Path, expect_multi_user: bool) {
    let m = manifest(out);
    assert_eq!(m["secure_boot"]["enabled"], true);
    for bank in ["sha256", "sha384"] {
        let pcrs: Vec<&str> = m["pcrs"][bank]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(pcrs, ["11", "12", "13", "4", "5", "7", "9"], "{bank}");
    }
    let (o, report) = boot(
        &out.join("disk.raw"),
        keys,
        Some(&out.join("manifest.json")),
        ENFORCING,
    );
    assert!(o.status.success(), "Secure Boot boot failed: {report:#}");
    let rows = report["attestation"]["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let seen: Vec<(String, u64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["bank"].as_str().unwrap_or("").to_string(),
                r["pcr"].as_u64().unwrap_or(99),
                r["ok"] == true,
            )
        })
        .collect();
    let mut want = Vec::new();
    for bank in ["sha256", "sha384"] {
        for pcr in [4, 5, 7, 9, 11, 12, 13] {
            want.push((bank.to_string(), pcr, true));
        }
    }
    assert_eq!(seen, want, "every PCR in both banks: {report:#}");
    let console = std::fs::read_to_string(out.join("disk.console.log")).unwrap();
    assert!(console.contains(ENFORCING), "Secure Boot not enforcing");
    if expect_multi_user {
        assert!(console.contains("Reached target"), "{console}");
    }
}

fn stub_boots_enforcing(version: u32, second_db_cert: bool) {
    if !ready() {
        return;
    }
    let Some(stub) = stub(version) else { return };
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    if second_db_cert {
        // An unrelated certificate enrolled in db before ours changes db's PCR 7 event, not
        // the authority event: both must still be predicted.
        let other = d.path().join("other");
        keygen(&other, &[]);
        keygen(&keys, &["--add-db", other.join("db.crt").to_str().unwrap()]);
    } else {
        keygen(&keys, &[]);
    }
    let out = fixture(&d.path().join("img"), &stub, Some(&keys));
    if second_db_cert {
        let db = &manifest(&out)["secure_boot"]["variables"]["db"]["certificates"];
        assert_eq!(db.as_array().map(Vec::len), Some(2), "{db}");
    }
    enforcing_boot_matches_manifest(&out, &keys, false);
}

#[test]
fn boot_secure_boot_stub_252() {
    stub_boots_enforcing(252, false);
}

#[test]
fn boot_secure_boot_stub_254_with_two_db_certificates() {
    stub_boots_enforcing(254, true);
}

#[test]
fn boot_secure_boot_stub_257() {
    stub_boots_enforcing(257, false);
}

#[test]
fn boot_secure_boot_default_image() {
    if !ready() || !have_tool("mmdebstrap") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    keygen(&keys, &[]);
    let cfg = d.path().join("image.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}\n[secure-boot]\nkeys = \"{}\"\n",
            builder::cli::build::DEFAULT_CONFIG,
            keys.display()
        ),
    )
    .unwrap();
    let out = build(&cfg, d.path());
    let m = manifest(&out);
    let (o, report) = boot(
        &out.join("disk.raw"),
        &keys,
        Some(&out.join("manifest.json")),
        "Reached target multi-user.target",
    );
    assert!(o.status.success(), "default image, Secure Boot: {report:#}");
    let console = std::fs::read_to_string(out.join("disk.console.log")).unwrap();
    assert!(console.contains(ENFORCING), "Secure Boot not enforcing");
    assert_eq!(m["secure_boot"]["enabled"], true);
}

/// Where `needle` (a piece of the UKI) starts in the disk image.
fn find(disk: &[u8], needle: &[u8]) -> usize {
    disk.windows(needle.len())
        .position(|w| w == needle)
        .expect("UKI bytes not found in disk.raw")
}

/// A boot the firmware must refuse: fails fast, naming "Access Denied" and the reason.
fn assert_refused(disk: &Path, keys: &Path, what: &str) {
    let start = std::time::Instant::now();
    let (o, report) = boot(disk, keys, None, ENFORCING);
    assert!(
        !o.status.success(),
        "{what}: booted with Secure Boot on: {report:#}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Access Denied"), "{what}: {err}");
    assert!(
        err.contains("refused the UKI under Secure Boot"),
        "{what}: {err}"
    );
    assert!(
        start.elapsed().as_secs() < 120,
        "{what}: took {:?}",
        start.elapsed()
    );
    let console = std::fs::read_to_string(disk.with_extension("console.log")).unwrap();
    assert!(
        !console.contains("Linux version"),
        "{what}: the kernel started"
    );
}

#[test]
fn boot_secure_boot_refuses_unsigned_foreign_and_modified_ukis() {
    if !ready() {
        return;
    }
    let Some(stub) = stub(257) else { return };
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    let foreign = d.path().join("foreign");
    keygen(&keys, &[]);
    keygen(&foreign, &[]);
    // Unsigned.
    let unsigned = fixture(&d.path().join("unsigned"), &stub, None);
    assert_refused(&unsigned.join("disk.raw"), &keys, "unsigned UKI");
    // Signed by a key whose certificate is not in the enrolled db.
    let other = fixture(&d.path().join("foreign-img"), &stub, Some(&foreign));
    assert_refused(
        &other.join("disk.raw"),
        &keys,
        "UKI signed by a key not in db",
    );
    // Signed by our key, then one byte of .linux flipped on the disk.
    let signed = fixture(&d.path().join("signed"), &stub, Some(&keys));
    let disk_path = signed.join("disk.raw");
    let uki = std::fs::read(signed.join("uki.efi")).unwrap();
    let mut disk = std::fs::read(&disk_path).unwrap();
    let probe = uki.len() / 2;
    let at = find(&disk, &uki[probe..probe + 4096]);
    disk[at] ^= 0x01;
    std::fs::write(&disk_path, &disk).unwrap();
    // sbverify agrees the flipped image's signature no longer holds.
    let esp_uki = d.path().join("flipped.efi");
    let mut flipped = uki.clone();
    flipped[probe] ^= 0x01;
    std::fs::write(&esp_uki, &flipped).unwrap();
    if have_tool("sbverify") {
        let v = Command::new("sbverify")
            .arg("--cert")
            .arg(keys.join("db.crt"))
            .arg(&esp_uki)
            .output()
            .unwrap();
        assert!(!v.status.success());
    }
    assert_refused(&disk_path, &keys, "signed UKI with one byte flipped");
}
