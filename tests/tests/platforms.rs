//! Per-platform reference values: `record-pcrs` from a real OVMF + swtpm event log, the
//! recorded values pinned by the next build's manifest, and `measure --format reference`.

use nodeimg_tests::*;
use serde_json::Value;

#[test]
fn recorded_firmware_pcrs_reach_the_next_manifest() {
    let Some(tar) = fixture_tar() else { return };
    let d = tempfile::tempdir().unwrap();
    let log = repo().join("fixtures/eventlog/ovmf-stub257.bin");
    let observed: Value = serde_json::from_slice(
        &std::fs::read(repo().join("fixtures/eventlog/ovmf-stub257.pcrs.json")).unwrap(),
    )
    .unwrap();
    let rec = d.path().join("qemu.json");
    assert_ok(
        &run_nodeimg(&[
            "record-pcrs",
            "--platform",
            "qemu-ovmf",
            "--event-log",
            log.to_str().unwrap(),
            "-o",
            rec.to_str().unwrap(),
        ]),
        "record-pcrs",
    );
    let recorded: Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    assert_eq!(recorded["platform"], "qemu-ovmf");
    // The replayed firmware PCRs equal what the TPM reported in that boot; image PCRs are not
    // recorded (they are predicted).
    for bank in ["sha256", "sha384"] {
        for pcr in ["0", "1", "2", "3", "6"] {
            assert_eq!(
                recorded["pcrs"][bank][pcr], observed[bank][pcr],
                "{bank} {pcr}"
            );
        }
        // PCR 5 (the GPT) is predicted from the disk on this platform, like 4.
        assert!(recorded["pcrs"][bank].get("4").is_none());
        assert!(recorded["pcrs"][bank].get("5").is_none());
    }

    let cfg = fixture_config(
        d.path(),
        &tar,
        &format!(
            "\n[measurements]\nplatform-values = [\"{}\"]\n",
            rec.display()
        ),
    );
    let out = d.path().join("out");
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "build with platform values",
    );
    let m = manifest(&out);
    let q = &m["platforms"]["qemu-ovmf"]["pcrs"];
    assert_eq!(q["0"]["source"], "recorded");
    assert_eq!(q["0"]["values"]["sha256"], observed["sha256"]["0"]);
    assert_eq!(q["4"]["source"], "image");
    assert_eq!(q["4"]["policy"], "enforce");
    assert_eq!(q["4"]["values"]["sha384"], m["pcrs"]["sha384"]["4"]);
    // Another platform's firmware PCRs stay unrecorded; its known constants are filled in.
    let aws = &m["platforms"]["aws-nitrotpm"]["pcrs"];
    assert!(aws["0"].get("values").is_none(), "{aws:#}");
    assert_eq!(
        aws["2"]["values"]["sha256"],
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"
    );
    assert_eq!(aws["14"]["values"]["sha384"], "00".repeat(48));
    assert_eq!(m["platforms"]["azure"]["pcrs"]["6"]["policy"], "exclude");

    // `measure uki --format reference` prints the same document for the UKI.
    let o = run_nodeimg(&[
        "measure",
        "uki",
        out.join("uki.efi").to_str().unwrap(),
        "--format",
        "reference",
    ]);
    assert_ok(&o, "measure --format reference");
    let reference: Value = serde_json::from_slice(&o.stdout).unwrap();
    for p in ["qemu-ovmf", "aws-nitrotpm", "gcp", "azure"] {
        assert_eq!(
            reference[p]["pcrs"]["11"], m["platforms"][p]["pcrs"]["11"],
            "{p}"
        );
    }

    // Bad input names what to fix.
    let o = run_nodeimg(&[
        "record-pcrs",
        "--platform",
        "oracle",
        "--event-log",
        log.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown platform `oracle`"));
    let pcrs = d.path().join("only4.json");
    std::fs::write(
        &pcrs,
        format!("{{\"sha256\":{{\"4\":\"{}\"}}}}", "ab".repeat(32)),
    )
    .unwrap();
    let o = run_nodeimg(&[
        "record-pcrs",
        "--platform",
        "gcp",
        "--pcrs",
        pcrs.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("none of gcp's platform PCRs"));
}
