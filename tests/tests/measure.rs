//! Measured-boot predictions cross-checked with independent tools, without booting:
//! `systemd-measure calculate` (systemd 252, the host's) for PCR 11 and its boot phases,
//! pesign and osslsigncode for Authenticode (PCR 4), tpm2_eventlog for the event-log parser,
//! and `nodeimg measure uki|disk` against the manifest `nodeimg build` wrote.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use measurements::authenticode;
use measurements::eventlog::EventLog;
use measurements::pcr::Bank;
use measurements::pe::Pe;
use nodeimg_tests::*;
use serde_json::Value;

/// systemd-measure is not on PATH in Debian.
const SYSTEMD_MEASURE: &str = "/usr/lib/systemd/systemd-measure";

/// The fixture built once with the host's (252) stub: (tempdir, output dir).
fn built() -> Option<&'static (tempfile::TempDir, PathBuf)> {
    static B: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    B.get_or_init(|| {
        let tar = fixture_tar()?;
        let stub = stub(252)?;
        let d = tempfile::tempdir().unwrap();
        let cfg = fixture_config(
            d.path(),
            &tar,
            &format!("\n[uki]\nstub = \"{}\"\n", stub.display()),
        );
        let out = d.path().join("out");
        assert_ok(
            &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
            "nodeimg build",
        );
        Some((d, out))
    })
    .as_ref()
}

fn tool_path(path: &str) -> bool {
    if Path::new(path).is_file() {
        return true;
    }
    have_tool(path)
}

/// Writes the UKI sections systemd-measure 252 understands to files; returns its arguments.
fn section_args(uki: &[u8], dir: &Path) -> Vec<String> {
    let pe = Pe::parse(uki).unwrap();
    let mut args = Vec::new();
    for (name, opt) in [
        (".linux", "--linux"),
        (".osrel", "--osrel"),
        (".cmdline", "--cmdline"),
        (".initrd", "--initrd"),
    ] {
        if let Some(data) = pe.section_data(name).unwrap() {
            let f = dir.join(&name[1..]);
            std::fs::write(&f, data).unwrap();
            args.push(format!("{opt}={}", f.display()));
        }
    }
    assert_eq!(
        args.len(),
        4,
        "the fixture UKI has .linux .osrel .cmdline .initrd"
    );
    args
}

#[test]
fn systemd_measure_252_gives_the_manifests_pcr11_and_phases() {
    let Some((d, out)) = built() else { return };
    if !tool_path(SYSTEMD_MEASURE) {
        return;
    }
    let m = manifest(out);
    assert_eq!(
        m["stub"]["version"].as_str().unwrap().split('.').next(),
        Some("252")
    );
    let dir = d.path().join("sections");
    std::fs::create_dir_all(&dir).unwrap();
    let args = section_args(&std::fs::read(out.join("uki.efi")).unwrap(), &dir);
    let run = |extra: &[&str]| -> Value {
        let o = run_tool(
            Command::new(SYSTEMD_MEASURE)
                .arg("calculate")
                .args(&args)
                .args(["--bank=sha256", "--bank=sha384", "--json=short"])
                .args(extra),
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // No phase: what PCR 11 holds while nodeimg-init runs (it measures no phase).
    let none = run(&["--phase=:"]);
    // Default phases: what systemd's pcrphase units would add.
    let phases = run(&[]);
    for bank in ["sha256", "sha384"] {
        assert_eq!(
            none[bank][0]["hash"], m["pcrs"][bank]["11"],
            "{bank} PCR 11"
        );
        let got: Vec<(String, String)> = phases[bank]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["phase"].as_str().unwrap().to_string(),
                    e["hash"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = m["pcr11_phases"][bank]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(got.len(), 4, "{bank}");
        assert_eq!(got, want, "{bank} phases");
    }
}

/// `osslsigncode extract-data -h ALG` → the digest in its SpcIndirectDataContent.
fn osslsigncode_digest(file: &Path, alg: &str, tmp: &Path) -> String {
    let der = tmp.join(format!("osslsigncode.{alg}.der"));
    let _ = std::fs::remove_file(&der); // osslsigncode refuses to overwrite
    run_tool(
        Command::new("osslsigncode")
            .args(["extract-data", "-h", alg, "-in"])
            .arg(file)
            .arg("-out")
            .arg(&der),
    );
    let o = run_tool(
        Command::new("openssl")
            .args(["asn1parse", "-inform", "DER", "-in"])
            .arg(&der),
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().rfind(|l| l.contains("[HEX DUMP]:")).unwrap();
    line.rsplit(':').next().unwrap().trim().to_ascii_lowercase()
}

fn pesign_digest(file: &Path) -> String {
    let o = run_tool(Command::new("pesign").arg("-i").arg(file).arg("-h"));
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .strip_prefix("hash: ")
        .unwrap()
        .to_string()
}

/// PCR 4's digests on real binaries: the three Debian stubs (252's length is not a multiple of
/// 8), the fixture UKI and its kernel. pesign hashes the file as is (like the firmware);
/// osslsigncode pads to 8 bytes first, so it is compared with our digest of the padded file.
#[test]
fn authenticode_agrees_with_pesign_and_osslsigncode() {
    let Some((d, out)) = built() else { return };
    if !have_tool("pesign") || !have_tool("osslsigncode") || !have_tool("openssl") {
        return;
    }
    let uki = out.join("uki.efi");
    let kernel = d.path().join("kernel.efi");
    let uki_bytes = std::fs::read(&uki).unwrap();
    std::fs::write(
        &kernel,
        Pe::parse(&uki_bytes)
            .unwrap()
            .section_data(".linux")
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let mut files = vec![uki, kernel];
    files.extend([252, 254, 257].iter().filter_map(|&v| stub(v)));
    assert_eq!(files.len(), 5);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let mut padded = data.clone();
        padded.resize(data.len().div_ceil(8) * 8, 0);
        let ours = |d: &[u8], b| authenticode::digest_of(d, b).unwrap().to_hex();
        assert_eq!(
            ours(&data, Bank::Sha256),
            pesign_digest(f),
            "pesign {}",
            f.display()
        );
        for (alg, bank) in [("sha256", Bank::Sha256), ("sha384", Bank::Sha384)] {
            assert_eq!(
                ours(&padded, bank),
                osslsigncode_digest(f, alg, d.path()),
                "osslsigncode {alg} {}",
                f.display()
            );
        }
    }
    // The manifest's PCR 4 application events are these digests.
    let m = manifest(out);
    let apps: Vec<&Value> = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "EV_EFI_BOOT_SERVICES_APPLICATION")
        .collect();
    assert_eq!(apps.len(), 2);
    assert_eq!(
        apps[0]["digests"]["sha256"].as_str().unwrap(),
        pesign_digest(&files[0])
    );
    assert_eq!(
        apps[1]["digests"]["sha256"].as_str().unwrap(),
        pesign_digest(&files[1])
    );
}

#[test]
fn measure_uki_and_disk_print_the_manifest_fields() {
    let Some((_d, out)) = built() else { return };
    let m = manifest(out);
    let uki = out.join("uki.efi");
    let disk = out.join("disk.raw");
    for args in [
        vec!["measure", "uki", uki.to_str().unwrap(), "--json"],
        vec!["measure", "disk", disk.to_str().unwrap(), "--json"],
    ] {
        let o = run_nodeimg(&args);
        assert_ok(&o, "nodeimg measure");
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        // A UKI alone has no GPT: everything but PCR 5; the disk gives all of it.
        let mut want = m.clone();
        if args[1] == "uki" {
            for bank in ["sha256", "sha384"] {
                want["pcrs"][bank].as_object_mut().unwrap().remove("5");
            }
            want["events"]
                .as_array_mut()
                .unwrap()
                .retain(|e| e["pcr"] != 5);
        }
        for key in ["pcrs", "pcr11_phases", "events"] {
            assert_eq!(j[key], want[key], "{key} ({})", args[1]);
        }
        assert_eq!(j["stub"]["version"], m["stub"]["version"]);
        let n = if args[1] == "uki" { 6 } else { 7 };
        assert_eq!(j["pcrs"]["sha256"].as_object().unwrap().len(), n);
    }
    // PCR 5's GPT event: LBA 1's first 92 bytes, the count of used entries, each used entry, as
    // read here from disk.raw.
    let raw = std::fs::read(&disk).unwrap();
    let le32 = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().unwrap()) as usize;
    let (array_lba, count, size) = (le32(512 + 72), le32(512 + 80), le32(512 + 84));
    let used: Vec<&[u8]> = raw[array_lba * 512..array_lba * 512 + count * size]
        .chunks(size)
        .filter(|e| e[..16] != [0; 16])
        .collect();
    let mut data = raw[512..512 + 92].to_vec();
    data.extend((used.len() as u64).to_le_bytes());
    for e in &used {
        data.extend_from_slice(e);
    }
    let gpt_event = m["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "EV_EFI_GPT_EVENT")
        .expect("a GPT event");
    assert_eq!(gpt_event["pcr"], 5);
    assert_eq!(
        gpt_event["digests"]["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data)).as_str()
    );
    let o = run_nodeimg(&["measure", "uki", uki.to_str().unwrap(), "--pcr", "5"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("measure disk"));
    let o = run_nodeimg(&[
        "measure",
        "disk",
        disk.to_str().unwrap(),
        "--format",
        "constellation",
    ]);
    assert_ok(&o, "nodeimg measure --format constellation");
    let c: Value = serde_json::from_slice(&o.stdout).unwrap();
    for pcr in ["4", "5", "7", "9", "11", "12", "13"] {
        assert_eq!(c["measurements"][pcr]["expected"], m["pcrs"]["sha256"][pcr]);
        assert_eq!(c["measurements"][pcr]["warnOnly"], false);
    }
    let o = run_nodeimg(&["measure", "uki", disk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("parsing the UKI"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// tpm2_eventlog (tpm2-tools) parses the checked-in OVMF logs and replays them to the same
/// PCRs as our parser.
#[test]
fn tpm2_eventlog_replays_the_fixture_logs_like_we_do() {
    if !have_tool("tpm2_eventlog") {
        return;
    }
    for v in [252, 254, 257] {
        let path = repo().join(format!("fixtures/eventlog/ovmf-stub{v}.bin"));
        let ours = EventLog::parse(&std::fs::read(&path).unwrap()).unwrap();
        let o = run_tool(Command::new("tpm2_eventlog").arg(&path));
        let text = String::from_utf8_lossy(&o.stdout);
        let pcrs = &text[text.find("\npcrs:").expect("pcrs section")..];
        for bank in Bank::ALL {
            let replayed = ours.replay(bank).unwrap();
            let section = &pcrs[pcrs.find(&format!("  {}:", bank.name())).unwrap()..];
            for (pcr, value) in replayed {
                let line = section
                    .lines()
                    .find(|l| l.trim_start().starts_with(&format!("{pcr} ")))
                    .unwrap_or_else(|| panic!("{v} {bank} PCR {pcr}"));
                let theirs = line
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .trim()
                    .trim_start_matches("0x")
                    .to_ascii_lowercase();
                assert_eq!(value.to_hex(), theirs, "stub {v} {bank} PCR {pcr}");
            }
        }
        assert_eq!(
            text.matches("- EventNum:").count(),
            ours.events.len() + 1,
            "stub {v}"
        );
    }
}

/// A credential dropped beside the UKI on the ESP is measured by systemd-stub into PCR 12:
/// `measure disk` and `verify --image` must not predict "PCR 12 = 0" for such a disk.
#[test]
fn esp_files_the_stub_measures_are_not_silently_ignored() {
    let Some((d, out)) = built() else { return };
    if !have_tool("mcopy") {
        return;
    }
    let disk = d.path().join("with-cred.raw");
    std::fs::copy(out.join("disk.raw"), &disk).unwrap();
    let parts = builder::disk::read(std::fs::File::open(&disk).unwrap()).unwrap();
    let esp = parts
        .iter()
        .find(|p| p.type_guid == builder::disk::TYPE_ESP)
        .unwrap();
    let img = format!("{}@@{}", disk.display(), esp.offset);
    let cred = d.path().join("token.cred");
    std::fs::write(&cred, b"secret").unwrap();
    run_tool(Command::new("mmd").args(["-i", &img, "::/EFI/BOOT/BOOTX64.EFI.extra.d"]));
    run_tool(
        Command::new("mcopy")
            .args(["-i", &img])
            .arg(&cred)
            .arg("::/EFI/BOOT/BOOTX64.EFI.extra.d/token.cred"),
    );
    let r = run_nodeimg(&["measure", "disk", disk.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1), "{r:?}");
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(
        e.contains("/EFI/BOOT/BOOTX64.EFI.extra.d/token.cred") && e.contains("PCR 12"),
        "{e}"
    );
    // The untouched disk still measures.
    assert_ok(
        &run_nodeimg(&["measure", "disk", out.join("disk.raw").to_str().unwrap()]),
        "measure disk",
    );
}
