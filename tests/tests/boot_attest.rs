//! Tier 3, attested boots: the fixture image built with each Debian systemd-stub (252, 254,
//! 257) boots under QEMU (TCG) + OVMF + swtpm, and `nodeimg boot --tpm --manifest` finds every
//! PCR 4, 5, 7, 9, 11, 12 and 13 equal to the manifest in both the SHA-256 and the SHA-384 bank. A
//! manifest made for another command line must fail, naming PCR 11, PCR 9 and the `.cmdline`
//! event. Boots run one at a time (each ~10–20 s under TCG) under `nodeimg boot --timeout`.
//! The same builds carry TDX RTMRs (`[measurements.tdx]`): their RTMR1 events must be the SHA-384
//! digests of the PCR 4 and 5 events the real firmware logged (the same code paths, another
//! register), in the same order.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;

use nodeimg_tests::*;
use serde_json::Value;

/// One QEMU at a time: parallel TCG boots on two cores only slow each other down.
static BOOT: Mutex<()> = Mutex::new(());

/// Builds the fixture with the given stub and extra kernel arguments; returns the output dir.
fn build(dir: &Path, stub: &Path, extra_cmdline: &str) -> PathBuf {
    let tar = fixture_tar().expect("checked by the caller");
    std::fs::create_dir_all(dir).unwrap();
    let cfg = fixture_config(
        dir,
        &tar,
        &format!(
            "\n[uki]\nstub = \"{}\"\n\n[measurements.tdx]\novmf = [\"{}\"]\n",
            stub.display(),
            ovmf_prebuilt::ovmf_pure_efi().display()
        ),
    );
    if !extra_cmdline.is_empty() {
        let text = std::fs::read_to_string(&cfg).unwrap();
        let text = text.replace(
            "\"panic=-1\"]",
            &format!("\"panic=-1\", \"{extra_cmdline}\"]"),
        );
        std::fs::write(&cfg, text).unwrap();
    }
    let out = dir.join("out");
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "nodeimg build",
    );
    out
}

fn ready() -> bool {
    fixture_tar().is_some()
        && have_tool("qemu-system-x86_64")
        && have_tool("swtpm")
        && have_tool("swtpm_setup")
}

/// `nodeimg boot DISK --tpm --manifest M --json`, saving the TPM event log next to DISK
/// (`.eventlog`).
fn attested_boot(disk: &Path, manifest: &Path) -> (Output, Value) {
    let _one = BOOT.lock().unwrap_or_else(|e| e.into_inner());
    let log = disk.with_extension("console.log");
    let event_log = disk.with_extension("eventlog");
    let out = run_nodeimg(&[
        "boot",
        disk.to_str().unwrap(),
        "--tpm",
        "--accel",
        "tcg",
        "--timeout",
        "300",
        "--manifest",
        manifest.to_str().unwrap(),
        "--console-log",
        log.to_str().unwrap(),
        "--save-event-log",
        event_log.to_str().unwrap(),
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    eprintln!("--- stderr ---\n{}", String::from_utf8_lossy(&out.stderr));
    (out, report)
}

fn boot_matches_manifest(version: u32) {
    if !ready() {
        return;
    }
    let Some(stub) = stub(version) else { return };
    let d = tempfile::tempdir().unwrap();
    let out = build(d.path(), &stub, "");
    let m = manifest(&out);
    assert!(m["stub"]["version"]
        .as_str()
        .unwrap()
        .starts_with(&version.to_string()));
    let (o, report) = attested_boot(&out.join("disk.raw"), &out.join("manifest.json"));
    assert_ok(&o, &format!("attested boot with stub {version}"));
    let rows = report["attestation"]["rows"].as_array().unwrap();
    let seen: Vec<(String, u64, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["bank"].as_str().unwrap().to_string(),
                r["pcr"].as_u64().unwrap(),
                r["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    let mut want = Vec::new();
    for bank in ["sha256", "sha384"] {
        for pcr in [4, 5, 7, 9, 11, 12, 13] {
            want.push((bank.to_string(), pcr, true));
        }
    }
    assert_eq!(seen, want, "stub {version}: every PCR in both banks");
    // The values compared are the TPM's: spot-check one against the report's raw PCRs.
    assert_eq!(report["pcrs"]["sha384"]["11"], m["pcrs"]["sha384"]["11"]);
    rtmr1_events_are_the_logged_pcr4_and_5_events(&out, &m, version);
}

/// The manifest's TDX RTMR1 events against the real OVMF + swtpm log of the same boot: the
/// SHA-384 digests of the logged PCR 4 and 5 events in log order, without PCR 5's separator
/// (TDVF logs one separator per register).
fn rtmr1_events_are_the_logged_pcr4_and_5_events(out: &Path, m: &Value, version: u32) {
    use measurements::eventlog::EventLog;
    use measurements::pcr::{Bank, EventType};
    let bytes = std::fs::read(out.join("disk.eventlog")).expect("the saved event log");
    let log = EventLog::parse(&bytes).unwrap();
    let mut pcr5_separator = false;
    let logged: Vec<(String, String)> = log
        .events
        .iter()
        .filter(|e| matches!(e.pcr, 4 | 5) && e.event_type != EventType::NO_ACTION)
        .filter(|e| {
            let skip = e.pcr == 5 && e.event_type == EventType::SEPARATOR && !pcr5_separator;
            pcr5_separator |= skip;
            !skip
        })
        .map(|e| {
            (
                e.event_type.name(),
                e.digest(Bank::Sha384).unwrap().to_hex(),
            )
        })
        .collect();
    let rtmrs = &m["tdx"][0]["rtmrs"];
    assert_eq!(rtmrs["edk2"], "edk2-202411");
    let predicted: Vec<(String, String)> = rtmrs["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["rtmr"] == 1)
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["sha384"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(predicted.len(), 7, "stub {version}: {predicted:#?}");
    assert_eq!(
        predicted, logged,
        "stub {version}: RTMR1 vs the logged PCR 4/5 events"
    );
    // RTMR2: stub 257 speaks the CC protocol (its PCR 11 events), 252 and 254 do not; the
    // fixture's 6.1 kernel measures nothing there.
    let rtmr2: Vec<&Value> = rtmrs["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["rtmr"] == 2)
        .collect();
    if version >= 256 {
        let pcr11 = m["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["pcr"] == 11)
            .count();
        assert_eq!(rtmr2.len(), pcr11, "stub {version}");
        assert!(rtmr2.iter().all(|e| e["pcr"] == 11));
    } else {
        assert!(rtmr2.is_empty(), "stub {version}: {rtmr2:#?}");
        assert_eq!(rtmrs["values"]["2"], "00".repeat(48));
    }
}

#[test]
fn attested_boot_stub_252() {
    boot_matches_manifest(252);
}

#[test]
fn attested_boot_stub_254() {
    boot_matches_manifest(254);
}

#[test]
fn attested_boot_stub_257() {
    boot_matches_manifest(257);
}

/// The image boots fine, but its manifest was computed for `… panic=-1 quiet`: PCR 4 (UKI
/// digest), 9 (LoadOptions) and 11 (`.cmdline`) must differ, and the report must say where.
#[test]
fn attested_boot_fails_for_a_manifest_of_another_cmdline() {
    if !ready() {
        return;
    }
    let Some(stub) = stub(257) else { return };
    let d = tempfile::tempdir().unwrap();
    let real = build(&d.path().join("real"), &stub, "");
    let other = build(&d.path().join("other"), &stub, "quiet");
    let (o, report) = attested_boot(&real.join("disk.raw"), &other.join("manifest.json"));
    assert!(!o.status.success(), "a foreign manifest was accepted");
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "PCR 11 differs",
        "first difference: PCR 11 event 6 (.cmdline section contents",
        "PCR 9 differs",
        "first difference: PCR 9 event 1 (LOADED_IMAGE::LoadOptions: \"roothash=",
        "panic=-1 quiet\")",
        "PCR 4 differs",
    ] {
        assert!(err.contains(want), "stderr lacks {want:?}");
    }
    let bad: Vec<u64> = report["attestation"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .map(|r| r["pcr"].as_u64().unwrap())
        .collect();
    assert_eq!(bad, [4, 9, 11, 4, 9, 11]);
    // The boot itself worked: it is the comparison that failed.
    assert_eq!(report["failed_on"].as_array().map(Vec::len), Some(0));
}
