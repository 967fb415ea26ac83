//! Confidential-VM launch digests against real firmware:
//!
//! * the live oracle `sev-snp-measure` 0.0.13 and `nodeimg measure snp` agree, argument list by
//!   argument list, on Debian's `/usr/share/ovmf/OVMF.fd`, the image inside the `ovmf-prebuilt`
//!   0.1.0-alpha.1 crate and the two 4 KiB edk2 fixtures of sev-snp-measure / the `sev` crate;
//! * the TDX MRTD of Debian bookworm's `OVMF.fd` equals the published single- and two-pass values;
//! * `nodeimg build` records every configured combination in manifest.json.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nodeimg_tests::*;

const DEBIAN_OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// Debian bookworm `ovmf` 2022.11-6+deb12u2 `OVMF.fd`, the file the published MRTDs are for.
const DEBIAN_OVMF_SHA256: &str = "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773";

fn fixture(name: &str) -> PathBuf {
    repo().join("measurements/tests/data/cvm").join(name)
}

/// A firmware file and whether it supports measured direct boot (an SNP_KERNEL_HASHES section).
struct Firmware {
    path: PathBuf,
    kernel_hashes: bool,
}

fn firmwares() -> Vec<Firmware> {
    let mut v = vec![
        Firmware {
            path: ovmf_prebuilt::ovmf_pure_efi(),
            kernel_hashes: false,
        },
        Firmware {
            path: fixture("ovmf_AmdSev_suffix.bin"),
            kernel_hashes: true,
        },
        Firmware {
            path: fixture("ovmf_OvmfX64_suffix.bin"),
            kernel_hashes: false,
        },
    ];
    if have_file(Path::new(DEBIAN_OVMF), "apt-get install ovmf") {
        v.insert(
            0,
            Firmware {
                path: DEBIAN_OVMF.into(),
                kernel_hashes: false,
            },
        );
    }
    v
}

fn sev_snp_measure() -> Option<&'static str> {
    if !have_tool("sev-snp-measure") {
        return None;
    }
    let out = Command::new("sev-snp-measure")
        .arg("--version")
        .output()
        .ok()?;
    let v =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        v.contains("0.0.13"),
        "the oracle must be sev-snp-measure 0.0.13 (EC2 and VMSA digests differ between versions), found {v:?}"
    );
    Some("sev-snp-measure")
}

/// The ways to name a vCPU, rotated through the cases.
const VCPU_SPECS: &[&[&str]] = &[
    &["--vcpu-type", "EPYC-v4"],
    &["--vcpu-type", "EPYC-Rome"],
    &["--vcpu-type", "EPYC-Milan-v2"],
    &["--vcpu-type", "EPYC-Genoa"],
    &["--vcpu-type", "EPYC-Turin"],
    &["--vcpu-sig", "0xa10f11"],
    &[
        "--vcpu-family",
        "25",
        "--vcpu-model",
        "17",
        "--vcpu-stepping",
        "1",
    ],
];

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Argument lists (without the program) for one firmware file.
fn cases(fw: &Firmware, kernel: &[String]) -> Vec<Vec<String>> {
    let ovmf = fw.path.to_str().unwrap();
    let mut out = vec![
        s(&["--mode", "snp:ovmf-hash", "--ovmf", ovmf]),
        s(&["--mode", "sev", "--ovmf", ovmf]),
    ];
    let mut n = 0;
    for vcpus in ["1", "2", "4", "64"] {
        for vmm in ["QEMU", "ec2", "gce"] {
            for features in ["0x1", "0x21"] {
                let mut a = s(&["--mode", "snp", "--ovmf", ovmf, "--vcpus", vcpus]);
                a.extend(s(VCPU_SPECS[n % VCPU_SPECS.len()]));
                a.extend(s(&["--vmm-type", vmm, "--guest-features", features]));
                if fw.kernel_hashes && n % 2 == 0 {
                    a.extend(kernel.iter().cloned());
                }
                out.push(a);
                n += 1;
            }
            let mut a = s(&[
                "--mode",
                "seves",
                "--ovmf",
                ovmf,
                "--vcpus",
                vcpus,
                "--vmm-type",
                vmm,
            ]);
            a.extend(s(VCPU_SPECS[n % VCPU_SPECS.len()]));
            if fw.kernel_hashes && vcpus == "2" {
                a.extend(kernel.iter().cloned());
            }
            out.push(a);
        }
    }
    let mut k = s(&[
        "--mode",
        "snp",
        "--ovmf",
        ovmf,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC",
    ]);
    k.extend(kernel.iter().cloned());
    out.push(k); // refused by both tools unless the firmware has kernel hashes
    let mut k = s(&["--mode", "sev", "--ovmf", ovmf]);
    k.extend(kernel[..2].iter().cloned());
    out.push(k);
    out
}

/// `--snp-ovmf-hash` with the firmware hash nodeimg computes (both tools must then give the
/// unseeded digest), and with a hash of the wrong length.
fn seeded_cases(fw: &Firmware) -> Vec<Vec<String>> {
    let ovmf = fw.path.to_str().unwrap();
    let out = run(
        nodeimg(),
        &["measure", "snp", "--mode", "snp:ovmf-hash", "--ovmf"],
        &s(&[ovmf]),
    );
    assert_ok(&out, "measure snp --mode snp:ovmf-hash");
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let base = [
        "--mode",
        "snp",
        "--ovmf",
        ovmf,
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-Genoa",
    ];
    let mut seeded = s(&base);
    seeded.extend(s(&["--snp-ovmf-hash", &hash]));
    let mut gce = seeded.clone();
    gce.extend(s(&["--vmm-type", "gce"]));
    let mut short = s(&base);
    short.extend(s(&["--snp-ovmf-hash", &hash[..40]]));
    vec![seeded, gce, short]
}

/// Argument lists both tools must refuse.
fn refusals() -> Vec<Vec<String>> {
    let a = fixture("ovmf_AmdSev_suffix.bin");
    let a = a.to_str().unwrap();
    vec![
        s(&["--mode", "snp", "--ovmf", a, "--vcpu-type", "EPYC"]), // no --vcpus
        s(&["--mode", "snp", "--ovmf", a, "--vcpus", "2"]),        // QEMU without a vCPU
        s(&[
            "--mode",
            "seves",
            "--ovmf",
            a,
            "--vcpus",
            "2",
            "--vcpu-type",
            "EPYC-v9",
        ]),
        s(&[
            "--mode",
            "snp",
            "--ovmf",
            a,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC",
            "--vmm-type",
            "qemu",
        ]),
        s(&[
            "--mode",
            "snp",
            "--ovmf",
            a,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC",
            "--initrd",
            a,
        ]),
        s(&[
            "--mode",
            "seves",
            "--ovmf",
            a,
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC",
            "--snp-ovmf-hash",
            "00",
        ]),
        s(&[
            "--mode",
            "snp",
            "--ovmf",
            "/nonexistent/OVMF.fd",
            "--vcpus",
            "1",
            "--vcpu-type",
            "EPYC",
        ]),
    ]
}

fn run(program: &Path, prefix: &[&str], args: &[String]) -> Output {
    Command::new(program)
        .args(prefix)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()))
}

/// What one argument list gave.
enum Verdict {
    /// Both printed the same digest.
    SameDigest,
    /// Both refused the arguments.
    BothRefused,
    /// A description of the disagreement.
    Differ(String),
}

/// Runs both tools on one argument list.
fn compare(oracle: &str, args: &[String]) -> Verdict {
    let theirs = run(Path::new(oracle), &[], args);
    let ours = run(nodeimg(), &["measure", "snp"], args);
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
    match (theirs.status.success(), ours.status.success()) {
        (true, true) if text(&theirs) == text(&ours) => return Verdict::SameDigest,
        (false, false) => return Verdict::BothRefused,
        _ => {}
    }
    Verdict::Differ(format!(
        "{args:?}\n  sev-snp-measure ({}): {} {}\n  nodeimg ({}): {} {}",
        theirs.status,
        text(&theirs),
        String::from_utf8_lossy(&theirs.stderr).trim(),
        ours.status,
        text(&ours),
        String::from_utf8_lossy(&ours.stderr).trim()
    ))
}

/// Writes a deterministic kernel and initrd; returns the measured-direct-boot arguments.
fn kernel_args(dir: &Path) -> Vec<String> {
    let bytes = |seed: u32, len: usize| -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
            .collect()
    };
    let (k, i) = (dir.join("vmlinuz"), dir.join("initrd.img"));
    std::fs::write(&k, bytes(1, 300_001)).unwrap();
    std::fs::write(&i, bytes(2, 70_000)).unwrap();
    s(&[
        "--kernel",
        k.to_str().unwrap(),
        "--initrd",
        i.to_str().unwrap(),
        "--append",
        "console=ttyS0 root=/dev/vda ro",
    ])
}

#[test]
fn sev_snp_measure_agrees_on_every_combination() {
    let Some(oracle) = sev_snp_measure() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = kernel_args(dir.path());
    let mut all: Vec<Vec<String>> = Vec::new();
    for fw in firmwares() {
        all.extend(cases(&fw, &kernel));
        all.extend(seeded_cases(&fw));
    }
    all.extend(refusals());
    let half = all.len().div_ceil(2);
    let verdicts: Vec<Verdict> = std::thread::scope(|sc| {
        let workers: Vec<_> = all
            .chunks(half)
            .map(|part| {
                sc.spawn(move || part.iter().map(|a| compare(oracle, a)).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let same = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::SameDigest))
        .count();
    let refused = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::BothRefused))
        .count();
    let failures: Vec<&String> = verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::Differ(d) => Some(d),
            _ => None,
        })
        .collect();
    eprintln!(
        "sev-snp-measure 0.0.13 vs nodeimg: {} argument lists, {same} same digest, {refused} refused by both",
        all.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(same >= 50, "only {same} digests compared");
}

#[test]
fn kernel_hash_cases_really_change_the_digest() {
    // Guards the oracle test against comparing two tools that both ignore --kernel.
    let dir = tempfile::tempdir().unwrap();
    let kernel = kernel_args(dir.path());
    let a = fixture("ovmf_AmdSev_suffix.bin");
    let base = s(&[
        "measure",
        "snp",
        "--ovmf",
        a.to_str().unwrap(),
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
    ]);
    let plain = run(nodeimg(), &[], &base);
    let mut with = base.clone();
    with.extend(kernel);
    let with = run(nodeimg(), &[], &with);
    assert_ok(&plain, "measure snp");
    assert_ok(&with, "measure snp --kernel");
    assert_ne!(plain.stdout, with.stdout);
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

fn measure_tdx(ovmf: &Path, two_pass: bool) -> String {
    let mut args = vec!["measure", "tdx", "--ovmf", ovmf.to_str().unwrap()];
    if two_pass {
        args.push("--two-pass");
    }
    let out = run(nodeimg(), &[], &s(&args));
    assert_ok(&out, "nodeimg measure tdx");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Published in the spec (§16.3): computed by tinfoil's tdx-measure and a separate
/// re-implementation, which agree (not confirmed on TDX hardware).
#[test]
fn tdx_mrtd_of_debian_bookworm_ovmf() {
    let p = Path::new(DEBIAN_OVMF);
    if !have_file(p, "apt-get install ovmf") {
        return;
    }
    if sha256_file(p) != DEBIAN_OVMF_SHA256 {
        eprintln!("\n!!!!! SKIP: {DEBIAN_OVMF} is not the 2022.11-6+deb12u2 build the published MRTD is for !!!!!\n");
        return;
    }
    assert_eq!(measure_tdx(p, false), "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47");
    assert_eq!(measure_tdx(p, true), "acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e892d045b33db3b32e6924cba830a724eed443f7e1");
}

/// ovmf-prebuilt 0.1.0-alpha.1: same TDVF layout as bookworm (spec §13.2). The MRTDs are pinned
/// from nodeimg itself (no published vector exists): a change here means the MRTD code changed.
#[test]
fn tdx_mrtd_of_ovmf_prebuilt_is_pinned() {
    let p = ovmf_prebuilt::ovmf_pure_efi();
    let bytes = std::fs::read(&p).unwrap();
    let fw = measurements::cvm::Ovmf::parse(&bytes).unwrap();
    let layout: Vec<(u64, u64, u32, u32)> = fw
        .tdx_metadata()
        .unwrap()
        .sections
        .iter()
        .map(|s| (s.memory_address, s.memory_data_size, s.kind, s.attributes))
        .collect();
    assert_eq!(
        layout,
        [
            (0xffe20000, 0x1e0000, 0, 1),
            (0xffe00000, 0x20000, 1, 0),
            (0x810000, 0x10000, 3, 0),
            (0x80b000, 0x2000, 3, 0),
            (0x809000, 0x2000, 2, 0),
            (0x800000, 0x6000, 3, 0),
        ]
    );
    let json = run(
        nodeimg(),
        &["--json", "measure", "tdx", "--ovmf"],
        &[p.to_str().unwrap().to_string()],
    );
    assert_ok(&json, "measure tdx --json");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["ovmf_sha256"], sha256_file(&p));
    assert_eq!(v["two_pass"], false);
    assert_eq!(v["mrtd"].as_str().unwrap(), measure_tdx(&p, false));
    assert_eq!(measure_tdx(&p, false), PREBUILT_MRTD_SINGLE);
    assert_eq!(measure_tdx(&p, true), PREBUILT_MRTD_TWO_PASS);
}

const PREBUILT_MRTD_SINGLE: &str = "10d896e2e6b3107c0541216887fcb8c68f46d90eb90a2baae91af6b3db9d5b5f453ad1fbbe7b5b9c9a2e4b731ad8bd2c";
const PREBUILT_MRTD_TWO_PASS: &str = "820e382d9f46a8c8487d4fc0d394abc3a219ae2cf2f21f7472c726e0432c16f4af12cb133dee6e951afa6de9ccc9964a";

/// nodeimg against `tests/tools/tdx_mrtd.py`, a naive Python implementation that shares no
/// code with it, on every real firmware file at hand.
#[test]
fn tdx_mrtd_agrees_with_the_python_reimplementation() {
    if !have_tool("python3") {
        return;
    }
    let mut files = vec![ovmf_prebuilt::ovmf_pure_efi()];
    if have_file(Path::new(DEBIAN_OVMF), "apt-get install ovmf") {
        files.push(DEBIAN_OVMF.into());
    }
    for f in files {
        let py = Command::new("python3")
            .arg(repo().join("tests/tools/tdx_mrtd.py"))
            .arg(&f)
            .output()
            .unwrap();
        assert_ok(&py, "tdx_mrtd.py");
        let want = String::from_utf8_lossy(&py.stdout).to_string();
        let got = format!("{}\n{}\n", measure_tdx(&f, false), measure_tdx(&f, true));
        assert_eq!(got, want, "{}", f.display());
    }
}

#[test]
fn corrupt_firmware_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(ovmf_prebuilt::ovmf_pure_efi()).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "truncated",
            good[..30].to_vec(),
            "OVMF footer entry at offset -0x14",
        ),
        (
            "not page-sized",
            good[1..].to_vec(),
            "not a multiple of 4096",
        ),
        (
            "empty",
            Vec::new(),
            "runs past the end of the 0-byte firmware",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = run(
            nodeimg(),
            &[
                "measure",
                "snp",
                "--vcpus",
                "1",
                "--vcpu-type",
                "EPYC",
                "--ovmf",
            ],
            &[p.to_str().unwrap().to_string()],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

/// `nodeimg build` with `[measurements.snp]` and `[measurements.tdx]`: every combination in
/// manifest.json, each equal to sev-snp-measure's digest.
#[test]
fn build_records_every_combination() {
    let Some(tar) = fixture_tar() else { return };
    let Some(oracle) = sev_snp_measure() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let prebuilt = ovmf_prebuilt::ovmf_pure_efi();
    let amd = fixture("ovmf_AmdSev_suffix.bin");
    let extra = format!(
        "\n[measurements.snp]\novmf = [{:?}, {:?}]\nvcpus = [1, 4]\nvcpu-types = [\"EPYC-v4\", \"EPYC-Genoa\"]\nvmm-types = [\"QEMU\", \"ec2\", \"gce\"]\nguest-features = [\"0x1\", \"0x21\"]\n\n[measurements.tdx]\novmf = [{:?}]\n",
        prebuilt, amd, prebuilt
    );
    let cfg = fixture_config(d.path(), &tar, &extra);
    let out = d.path().join("out");
    let r = run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_ok(&r, "nodeimg build with [measurements.snp]");
    let m = manifest(&out);
    let snp = m["snp"].as_array().unwrap();
    assert_eq!(snp.len(), 2 * 2 * 2 * 3 * 2);
    for (i, e) in snp.iter().enumerate() {
        let ovmf = if i < snp.len() / 2 { &prebuilt } else { &amd };
        assert_eq!(e["ovmf_sha256"], sha256_file(ovmf));
        let args = s(&[
            "--mode",
            "snp",
            "--ovmf",
            ovmf.to_str().unwrap(),
            "--vcpus",
            &e["vcpus"].to_string(),
            "--vcpu-type",
            e["vcpu_type"].as_str().unwrap(),
            "--vmm-type",
            e["vmm_type"].as_str().unwrap(),
            "--guest-features",
            e["guest_features"].as_str().unwrap(),
        ]);
        let want = run(Path::new(oracle), &[], &args);
        assert_ok(&want, "sev-snp-measure");
        assert_eq!(
            e["measurement"].as_str().unwrap(),
            String::from_utf8_lossy(&want.stdout).trim(),
            "{e}"
        );
    }
    assert_eq!(m["tdx"][0]["mrtd"].as_str().unwrap(), PREBUILT_MRTD_SINGLE);
    assert_eq!(m["tdx"][0]["two_pass"], false);
}

/// The on-disk (mixed-endian) bytes of a GUID string, written independently of nodeimg's table.
fn guid_le(s: &str) -> Vec<u8> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    [
        &[b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]][..],
        &b[8..],
    ]
    .concat()
}

/// A minimal SVSM image: `pages` zero pages ending in a footer table with an SVSM information
/// block (entry point offset 0x1000) and SEV metadata (pre-validated memory, secrets, CPUID and
/// calling-area pages).
fn synthetic_svsm(pages: usize) -> Vec<u8> {
    let size = pages * 4096;
    let mut img = vec![0u8; size];
    // ASEV at 0x400 from the end.
    let sections: [(u32, u32, u32); 4] = [
        (0x80_0000, 0x3000, 1),
        (0x80_3000, 0x1000, 2),
        (0x80_4000, 0x1000, 3),
        (0x80_5000, 0x1000, 4),
    ];
    let mut asev = b"ASEV".to_vec();
    for v in [16 + 12 * sections.len() as u32, 1, sections.len() as u32] {
        asev.extend(v.to_le_bytes());
    }
    for (gpa, len, kind) in sections {
        for v in [gpa, len, kind] {
            asev.extend(v.to_le_bytes());
        }
    }
    img[size - 0x400..size - 0x400 + asev.len()].copy_from_slice(&asev);
    // Footer table, growing down from the footer entry at size - 0x32.
    let entry = |data: u32, guid: &str| -> Vec<u8> {
        [
            &data.to_le_bytes()[..],
            &22u16.to_le_bytes(),
            &guid_le(guid),
        ]
        .concat()
    };
    let table = [
        entry(0x400, "dc886566-984a-4798-a75e-5585a7bf67cc"),
        entry(0x1000, "a789a612-0597-4c4b-a49f-cbb1fe9d1ddd"),
        [
            &(18u16 + 44).to_le_bytes()[..],
            &guid_le("96b582de-1fb2-45f7-baea-a366c55a082d"),
        ]
        .concat(),
    ]
    .concat();
    img[size - 0x20 - table.len()..size - 0x20].copy_from_slice(&table);
    img
}

/// `--mode snp:svsm` on a synthetic SVSM image and real OVMF code images: both tools must
/// succeed and agree (the hardware-captured upstream vectors need firmware only in its Git repo).
#[test]
fn sev_snp_measure_agrees_on_svsm_mode() {
    let Some(oracle) = sev_snp_measure() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let svsm = dir.path().join("svsm.bin");
    std::fs::write(&svsm, synthetic_svsm(8)).unwrap();
    let prebuilt = ovmf_prebuilt::ovmf_pure_efi();
    let mut runs = vec![];
    for (vcpus, cpu) in [("1", "EPYC-v4"), ("2", "EPYC-Milan"), ("4", "EPYC-Turin")] {
        runs.push(s(&[
            "--mode",
            "snp:svsm",
            "--ovmf",
            prebuilt.to_str().unwrap(),
            "--svsm",
            svsm.to_str().unwrap(),
            "--vars-size",
            "540672",
            "--vcpus",
            vcpus,
            "--vcpu-type",
            cpu,
        ]));
    }
    let code = Path::new("/usr/share/OVMF/OVMF_CODE.fd");
    if have_file(code, "apt-get install ovmf") {
        runs.push(s(&[
            "--mode",
            "snp:svsm",
            "--ovmf",
            code.to_str().unwrap(),
            "--svsm",
            svsm.to_str().unwrap(),
            "--vars-file",
            "/usr/share/OVMF/OVMF_VARS.fd",
            "--vcpus",
            "3",
            "--vcpu-sig",
            "0xa10f11",
        ]));
    }
    for args in &runs {
        match compare(oracle, args) {
            Verdict::SameDigest => {}
            Verdict::BothRefused => panic!("both tools refused {args:?}"),
            Verdict::Differ(d) => panic!("{d}"),
        }
    }
}
