//! Tier 3, the whole loop: build (signed) → boot under QEMU + OVMF + swtpm → the image's own
//! nodeimg-init quotes its TPM with the verifier's nonce → `nodeimg verify --quote` against the
//! signed manifest. The same evidence with another nonce or a flipped signature bit fails, and
//! an image built for another command line, booted and quoted, fails against the first
//! manifest with the diverging PCR and event named.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nodeimg_tests::*;
use serde_json::Value;

/// One QEMU at a time: parallel TCG boots on two cores only slow each other down.
static BOOT: Mutex<()> = Mutex::new(());

const NONCE: &str = "c0ffee0ddba11f00d5eed5a1ad5e1ec7";

fn ready() -> bool {
    fixture_tar().is_some()
        && have_tool("qemu-system-x86_64")
        && have_tool("swtpm")
        && have_tool("swtpm_setup")
}

/// The fixture with stub 257, `extra` kernel arguments and `[signing]` with `key`.
fn build(dir: &Path, stub: &Path, extra: &str, key: &Path) -> PathBuf {
    let tar = fixture_tar().expect("checked by ready()");
    std::fs::create_dir_all(dir).unwrap();
    let cfg = fixture_config(
        dir,
        &tar,
        &format!(
            "\n[uki]\nstub = \"{}\"\n\n[signing]\nkey = \"{}\"\n",
            stub.display(),
            key.display()
        ),
    );
    if !extra.is_empty() {
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace("\"panic=-1\"]", &format!("\"panic=-1\", \"{extra}\"]")),
        )
        .unwrap();
    }
    let out = dir.join("out");
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "nodeimg build",
    );
    out
}

/// `nodeimg boot --tpm --quote NONCE --evidence DIR`; the evidence dir.
fn boot_and_quote(out: &Path, manifest: Option<&Path>) -> PathBuf {
    let _one = BOOT.lock().unwrap_or_else(|e| e.into_inner());
    let evidence = out.join("evidence");
    let disk = out.join("disk.raw");
    let log = out.join("console.log");
    let mut args = vec![
        "boot",
        disk.to_str().unwrap(),
        "--tpm",
        "--accel",
        "tcg",
        "--timeout",
        "300",
        "--quote",
        NONCE,
        "--evidence",
        evidence.to_str().unwrap(),
        "--console-log",
        log.to_str().unwrap(),
    ];
    if let Some(m) = manifest {
        args.extend(["--manifest", m.to_str().unwrap()]);
    }
    let o = run_nodeimg(&args);
    assert_ok(&o, "nodeimg boot --quote");
    for f in ["quote.msg", "quote.sig", "ak.pem", "nonce", "eventlog.bin"] {
        assert!(evidence.join(f).is_file(), "no {f} in the evidence");
    }
    evidence
}

/// `nodeimg --json verify MANIFEST --key PUB --quote … --event-log …`; (ok, checks).
fn verify(
    manifest: &Path,
    key: &Path,
    ev: &Path,
    nonce: &str,
    sig: Option<&Path>,
) -> (bool, Value) {
    let sig = sig
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ev.join("quote.sig"));
    let o = run_nodeimg(&[
        "--json",
        "verify",
        manifest.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--quote",
        ev.join("quote.msg").to_str().unwrap(),
        "--quote-signature",
        sig.to_str().unwrap(),
        "--ak",
        ev.join("ak.pem").to_str().unwrap(),
        "--nonce",
        nonce,
        "--event-log",
        ev.join("eventlog.bin").to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.success(), report)
}

fn check<'a>(report: &'a Value, name: &str) -> (&'a str, &'a str) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"));
    (c["status"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

#[test]
fn boot_quote_verify_loop() {
    if !ready() {
        return;
    }
    let Some(stub) = stub(257) else { return };
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("signing.key");
    assert_ok(
        &run_nodeimg(&[
            "keygen",
            "-o",
            key.to_str().unwrap(),
            "--algorithm",
            "ecdsa-p256",
        ]),
        "keygen",
    );
    let public = d.path().join("signing.key.pub");
    let real = build(&d.path().join("real"), &stub, "", &key);
    let manifest = real.join("manifest.json");
    // With --manifest the boot also checks the quote against it.
    let ev = boot_and_quote(&real, Some(&manifest));
    assert_eq!(
        std::fs::read_to_string(ev.join("nonce")).unwrap().trim(),
        NONCE
    );

    let (ok, report) = verify(&manifest, &public, &ev, NONCE, None);
    assert!(ok, "{report:#}");
    for c in [
        "signature",
        "quote",
        "quote-signature",
        "quote-nonce",
        "quote-selection",
        "quote-event-log",
        "quote-pcrs",
    ] {
        assert_eq!(check(&report, c).0, "ok", "{c}: {report:#}");
    }
    assert!(check(&report, "quote-selection")
        .1
        .contains("sha256, sha384"));

    // The same evidence, presented for another nonce: a replay.
    let (ok, report) = verify(&manifest, &public, &ev, "00112233", None);
    assert!(!ok);
    assert_eq!(check(&report, "quote-nonce").0, "failed");

    // One bit of the signature flipped.
    let mut sig = std::fs::read(ev.join("quote.sig")).unwrap();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    let flipped = ev.join("flipped.sig");
    std::fs::write(&flipped, sig).unwrap();
    let (ok, report) = verify(&manifest, &public, &ev, NONCE, Some(&flipped));
    assert!(!ok);
    assert_eq!(check(&report, "quote-signature").0, "failed");

    // Another command line: booted and quoted fine, but not the signed image.
    let other = build(&d.path().join("other"), &stub, "quiet", &key);
    let ev2 = boot_and_quote(&other, None);
    let (ok, report) = verify(&manifest, &public, &ev2, NONCE, None);
    assert!(!ok, "{report:#}");
    assert_eq!(check(&report, "quote-event-log").0, "ok", "{report:#}");
    let (st, why) = check(&report, "quote-pcrs");
    assert_eq!(st, "failed");
    assert!(
        why.contains("PCR 4") && why.contains("first difference"),
        "{why}"
    );
}
