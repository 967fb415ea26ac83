//! Reproducibility across environments, and refusals that leave nothing behind.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use nodeimg_tests::*;

const OUTPUTS: [&str; 5] = [
    "disk.raw",
    "uki.efi",
    "manifest.json",
    "sbom.cdx.json",
    "SHA256SUMS",
];

/// Builds with a given environment; `as_nobody` runs nodeimg as uid/gid 65534 via setpriv.
fn build_in(
    cfg: &Path,
    out: &Path,
    tmp: &Path,
    umask: &str,
    faketime: Option<&str>,
    as_nobody: bool,
) {
    let mut script = format!(
        "umask {umask}; exec {} build {} -o {}",
        nodeimg().display(),
        cfg.display(),
        out.display()
    );
    if let Some(t) = faketime {
        script = format!(
            "umask {umask}; exec faketime '{t}' {} build {} -o {}",
            nodeimg().display(),
            cfg.display(),
            out.display()
        );
    }
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            &script,
        ]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    let r = cmd
        .env("TMPDIR", tmp)
        .env_remove("NODEIMG_INIT")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert_ok(&r, &format!("build (nobody={as_nobody}, umask {umask})"));
}

#[test]
fn two_builds_in_different_environments_are_byte_identical() {
    let Some(tar) = fixture_tar() else { return };
    if !have_tool("faketime") || !have_tool("setpriv") || !have_root() {
        return;
    }
    // A world-accessible tree so uid 65534 can read inputs and write its outputs, under the
    // cargo target dir (wherever CARGO_TARGET_DIR puts it), whose ancestors uid 65534 can
    // traverse to reach the nodeimg binary anyway.
    std::fs::create_dir_all(target_dir()).unwrap();
    let d = tempfile::Builder::new()
        .prefix("nodeimg-repro")
        .tempdir_in(target_dir())
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let tar_copy = d.path().join("rootfs.tar");
    std::fs::copy(&tar, &tar_copy).unwrap();
    std::fs::set_permissions(&tar_copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = fixture_config(d.path(), &tar_copy, "");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    for sub in ["tmp-a", "tmp-b", "out-b"] {
        std::fs::create_dir(d.path().join(sub)).unwrap();
        std::fs::set_permissions(d.path().join(sub), std::fs::Permissions::from_mode(0o777))
            .unwrap();
    }
    let (a, b) = (d.path().join("out-a"), d.path().join("out-b/out"));
    build_in(&cfg, &a, &d.path().join("tmp-a"), "022", None, false);
    build_in(
        &cfg,
        &b,
        &d.path().join("tmp-b"),
        "077",
        Some("2031-05-17 03:04:05"),
        true,
    );
    for f in OUTPUTS {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(
            x == y,
            "{f} differs between the root/umask 022/now build and the nobody/umask 077/2031 build"
        );
    }
}

/// (name, tar bytes or None for the fixture, extra config, expected error fragment)
fn refuse(name: &str, cfg_text: &str, want: &str) {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("image.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let out = d.path().join("out");
    let r = run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{name}: exit status; stderr:\n{err}"
    );
    assert!(err.starts_with("error: "), "{name}: {err}");
    assert!(err.contains(want), "{name}: expected `{want}` in:\n{err}");
    assert!(!out.exists(), "{name}: output directory left behind");
}

fn raw_tar_entry(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn tar_config(d: &Path, tar: &[u8], extra: &str) -> String {
    let p = d.join("in.tar");
    std::fs::write(&p, tar).unwrap();
    format!(
        "[image]\nname = \"x\"\n[rootfs]\ntar = \"{}\"\n{extra}",
        p.display()
    )
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let mut dotdot = Vec::new();
    raw_tar_entry(&mut dotdot, "../x", b'0', "", b"evil");
    refuse("tar with ../x", &tar_config(d.path(), &dotdot, ""), "`..`");

    let mut escape = Vec::new();
    raw_tar_entry(&mut escape, "lib", b'2', "/tmp", b"");
    raw_tar_entry(&mut escape, "lib/evil", b'0', "", b"x");
    refuse(
        "write through an absolute symlink",
        &tar_config(d.path(), &escape, ""),
        "symlink",
    );

    let mut truncated = Vec::new();
    raw_tar_entry(&mut truncated, "big", b'0', "", &[1; 10000]);
    truncated.truncate(3000);
    refuse(
        "truncated tar",
        &tar_config(d.path(), &truncated, ""),
        "truncated",
    );

    let mut nokernel = Vec::new();
    raw_tar_entry(&mut nokernel, "etc/os-release", b'0', "", b"ID=x\n");
    refuse(
        "missing kernel",
        &tar_config(d.path(), &nokernel, ""),
        "no kernel in the rootfs",
    );

    refuse(
        "unknown config key",
        &tar_config(d.path(), &nokernel, "[disk]\nsize = 1\n"),
        "unknown field `size`",
    );
}

#[test]
fn stub_without_header_room_is_refused() {
    let Some(tar) = fixture_tar() else { return };
    let stub = Path::new("/usr/lib/systemd/boot/efi/linuxx64.efi.stub");
    if !stub.is_file() {
        if std::env::var("NODEIMG_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("systemd-boot-efi stub missing");
        }
        eprintln!("SKIP: no host stub");
        return;
    }
    // Claim three more (all-zero) section headers: the 252 stub's 7 free slots shrink to 4,
    // fewer than the 5 sections a UKI appends.
    let mut s = std::fs::read(stub).unwrap();
    let pe = u32::from_le_bytes(s[0x3c..0x40].try_into().unwrap()) as usize;
    let nsec = u16::from_le_bytes(s[pe + 6..pe + 8].try_into().unwrap());
    s[pe + 6..pe + 8].copy_from_slice(&(nsec + 3).to_le_bytes());
    let d = tempfile::tempdir().unwrap();
    let sp = d.path().join("tight.stub");
    std::fs::write(&sp, &s).unwrap();
    let cfg = fixture_config(
        d.path(),
        &tar,
        &format!("\n[uki]\nstub = \"{}\"\n", sp.display()),
    );
    refuse(
        "stub without header room",
        &std::fs::read_to_string(cfg).unwrap(),
        "header",
    );
}
