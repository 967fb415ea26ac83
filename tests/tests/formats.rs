//! Cloud disk formats (`[output] formats`, `build --format`): every format against QEMU's own
//! reader (`qemu-img check/compare/info`), the VHD footer read independently here, the GCE
//! tarball unpacked, two builds byte-identical, every digest in the signed manifest and
//! `verify --image` accepting each file.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use nodeimg_tests::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const FORMATS: [(&str, &str); 4] = [
    ("qcow2", "disk.qcow2"),
    ("vhd", "disk.vhd"),
    ("gce", "disk.tar.gz"),
    ("vmdk", "disk.vmdk"),
];

/// The fixture built with every format and a signing key into `dir/NAME`.
fn build(dir: &Path, name: &str, key: &Path) -> PathBuf {
    let tar = fixture_tar().expect("checked by the caller");
    build_fixture(
        dir,
        &tar,
        &format!(
            "\n[output]\nformats = [\"raw\", \"qcow2\", \"vhd\", \"gce\", \"vmdk\"]\n\n[signing]\nkey = \"{}\"\n",
            key.display()
        ),
        dir.join(name),
        "nodeimg build with every format",
    )
}

fn qemu_img(args: &[&str]) -> String {
    let o = run_tool(Command::new("qemu-img").args(args));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_format_is_read_back_by_qemu_img_and_is_signed_and_reproducible() {
    if fixture_tar().is_none() || !have_tool("qemu-img") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("k");
    assert_ok(
        &run_nodeimg(&["keygen", "-o", key.to_str().unwrap()]),
        "keygen",
    );
    let out = build(d.path(), "a", &key);
    let raw = out.join("disk.raw");
    let raw_bytes = std::fs::read(&raw).unwrap();
    let raw_size = raw_bytes.len() as u64;
    let (q, v, g) = (
        out.join("disk.qcow2"),
        out.join("disk.vhd"),
        out.join("disk.tar.gz"),
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // qcow2: consistent, the same disk, smaller than the raw one (zero clusters unallocated).
    let check = qemu_img(&["check", &s(&q)]);
    assert!(check.contains("No errors were found"), "{check}");
    assert!(
        qemu_img(&["compare", "-f", "qcow2", "-F", "raw", &s(&q), &s(&raw)])
            .contains("Images are identical")
    );
    let info: Value =
        serde_json::from_str(&qemu_img(&["info", "--output=json", "-f", "qcow2", &s(&q)])).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"].as_u64(), Some(raw_size));
    assert_eq!(info["format-specific"]["data"]["compat"], "1.1", "qcow2 v3");
    assert!(std::fs::metadata(&q).unwrap().len() < raw_size);

    // VHD: QEMU reads it as a fixed VHD of the raw size rounded to a whole MiB.
    let info: Value =
        serde_json::from_str(&qemu_img(&["info", "--output=json", "-f", "vpc", &s(&v)])).unwrap();
    let vsize = info["virtual-size"].as_u64().unwrap();
    assert_eq!(vsize, raw_size.div_ceil(1 << 20) * (1 << 20));
    assert!(
        qemu_img(&["compare", "-f", "vpc", "-F", "raw", &s(&v), &s(&raw)])
            .contains("Images are identical")
    );
    // The footer, read here: the last 512 bytes.
    let vhd = std::fs::read(&v).unwrap();
    assert_eq!(vhd.len() as u64, vsize + 512);
    let f = &vhd[vhd.len() - 512..];
    assert_eq!(&f[0..8], b"conectix");
    assert_eq!(
        u32::from_be_bytes(f[12..16].try_into().unwrap()),
        0x0001_0000
    );
    assert_eq!(
        u64::from_be_bytes(f[16..24].try_into().unwrap()),
        u64::MAX,
        "fixed: no data offset"
    );
    assert_eq!(u64::from_be_bytes(f[40..48].try_into().unwrap()), vsize);
    assert_eq!(u64::from_be_bytes(f[48..56].try_into().unwrap()), vsize);
    assert_eq!(
        u32::from_be_bytes(f[60..64].try_into().unwrap()),
        2,
        "disk type fixed"
    );
    let stored = u32::from_be_bytes(f[64..68].try_into().unwrap());
    let sum: u32 = f
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .map(|(_, b)| u32::from(*b))
        .sum();
    assert_eq!(stored, !sum, "footer checksum");
    assert_eq!(vsize % (1 << 20), 0, "Azure: a whole number of MiB");
    assert_eq!(&vhd[..raw_bytes.len()], &raw_bytes[..]);

    // VMDK: streamOptimized, consistent, the same disk.
    let k = out.join("disk.vmdk");
    let check = qemu_img(&["check", "-f", "vmdk", &s(&k)]);
    assert!(check.contains("No errors were found"), "{check}");
    let info: Value =
        serde_json::from_str(&qemu_img(&["info", "--output=json", "-f", "vmdk", &s(&k)])).unwrap();
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["virtual-size"].as_u64(), Some(raw_size));
    assert_eq!(
        info["format-specific"]["data"]["create-type"], "streamOptimized",
        "{info:#}"
    );
    assert!(
        qemu_img(&["compare", "-f", "vmdk", "-F", "raw", &s(&k), &s(&raw)])
            .contains("Images are identical")
    );

    // GCE: exactly one member, disk.raw, a whole number of GiB, the raw bytes then zeros.
    let gz = std::fs::File::open(&g).unwrap();
    let mut header = [0u8; 10];
    std::fs::File::open(&g)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    assert_eq!(&header[4..8], &[0, 0, 0, 0], "gzip mtime 0");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut members = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let size = e.header().size().unwrap();
        let mut head = vec![0u8; raw_bytes.len()];
        e.read_exact(&mut head).unwrap();
        assert_eq!(head, raw_bytes, "the member starts with disk.raw");
        let mut rest = Vec::new();
        e.read_to_end(&mut rest).unwrap();
        assert!(rest.iter().all(|&b| b == 0), "padding is zeros");
        members.push((name, size));
    }
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].0, "disk.raw");
    assert_eq!(members[0].1 % (1 << 30), 0, "GCE: a whole number of GiB");

    // Signed: every digest is in the manifest and SHA256SUMS; verify --image takes each.
    let m = manifest(&out);
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    for (_, file) in FORMATS {
        let bytes = std::fs::read(out.join(file)).unwrap();
        let sha = hex::encode(Sha256::digest(&bytes));
        assert_eq!(m["artifacts"][file]["sha256"], sha.as_str(), "{file}");
        assert_eq!(
            m["artifacts"][file]["size"].as_u64(),
            Some(bytes.len() as u64)
        );
        assert!(sums.contains(&format!("{sha}  {file}\n")), "{sums}");
        let o = run_nodeimg(&[
            "--json",
            "verify",
            &s(&out.join("manifest.json")),
            "--key",
            &format!("{}.pub", key.display()),
            "--image",
            &s(&out.join(file)),
        ]);
        assert_ok(&o, &format!("verify --image {file}"));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        let image = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "image")
            .unwrap();
        assert!(image["detail"].as_str().unwrap().contains(file), "{image}");
    }
    // A format's file altered by one byte: refused.
    let mut bad = std::fs::read(&q).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let badp = d.path().join("bad.qcow2");
    std::fs::write(&badp, bad).unwrap();
    let o = run_nodeimg(&[
        "verify",
        &s(&out.join("manifest.json")),
        "--key",
        &format!("{}.pub", key.display()),
        "--image",
        &s(&badp),
    ]);
    assert!(!o.status.success());

    // `nodeimg convert` writes the same bytes as the build (same epoch), and refuses to
    // overwrite.
    for (name, file) in FORMATS {
        let to = d.path().join(format!("converted-{file}"));
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 022; exec {} convert {} --format {name} -o {}",
                nodeimg().display(),
                s(&raw),
                s(&to)
            ))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert_ok(&o, &format!("convert --format {name}"));
        // A new file's mode (0666 less the umask), not a temporary file's 0600.
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&to).unwrap().permissions());
        assert_eq!(
            mode & 0o777,
            0o644,
            "convert --format {name}: mode {mode:o}"
        );
        assert_eq!(
            std::fs::read(&to).unwrap(),
            std::fs::read(out.join(file)).unwrap(),
            "convert --format {name} vs the build's {file}"
        );
        let again = run_nodeimg(&["convert", &s(&raw), "--format", name, "-o", &s(&to)]);
        assert!(
            !again.status.success(),
            "convert overwrote {}",
            to.display()
        );
    }

    // A second build: byte-identical in every format.
    let again = build(d.path(), "b", &key);
    for (_, file) in FORMATS.iter().chain(&[("raw", "disk.raw")]) {
        assert_eq!(
            std::fs::read(out.join(file)).unwrap(),
            std::fs::read(again.join(file)).unwrap(),
            "{file} differs between two builds"
        );
    }
}

#[test]
fn unknown_formats_are_config_errors() {
    let Some(tar) = fixture_tar() else { return };
    let d = tempfile::tempdir().unwrap();
    for (formats, want) in [
        ("\"iso\"", "unknown format `iso`"),
        ("\"raw\", \"qcow\"", "unknown format `qcow`"),
    ] {
        let cfg = fixture_config(
            d.path(),
            &tar,
            &format!("\n[output]\nformats = [{formats}]\n"),
        );
        let o = run_nodeimg(&[
            "build",
            cfg.to_str().unwrap(),
            "-o",
            d.path().join("o").to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(want) && err.contains("output.formats["),
            "{err}"
        );
    }
}

/// A disk another process truncates while `convert` reads it (mapped) ends the conversion with
/// an error naming the disk — not a SIGBUS death — and leaves neither the output nor the
/// temporary file behind.
#[test]
fn a_disk_truncated_during_convert_is_an_error_and_leaves_nothing() {
    use std::os::unix::process::ExitStatusExt;
    let d = tempfile::tempdir().unwrap();
    let disk = d.path().join("shrinking.raw");
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("disk.vhd");
    let mut hit = false;
    // The truncation must land while the conversion runs: it starts once the temporary file
    // exists, and 1 GiB of data takes ~1 s to convert here. A run that finished first is tried
    // again (at most three times).
    for _ in 0..3 {
        let chunk: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8 | 1).collect();
        let mut f = std::fs::File::create(&disk).unwrap();
        for _ in 0..1024 {
            std::io::Write::write_all(&mut f, &chunk).unwrap();
        }
        drop(f);
        let _ = std::fs::remove_file(&out);
        let child = Command::new(nodeimg())
            .args(["convert", "--format", "vhd", "-o"])
            .arg(&out)
            .arg(&disk)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::fs::read_dir(&out_dir).unwrap().next().is_none()
            && started.elapsed() < std::time::Duration::from_secs(30)
        {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&disk)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(
            o.status.signal(),
            Some(libc::SIGBUS),
            "convert died of SIGBUS: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if o.status.success() {
            assert_eq!(left, vec![std::ffi::OsString::from("disk.vhd")]);
            continue; // finished before the truncation
        }
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("shrinking.raw") && err.contains("shrank"),
            "the error names the disk and what happened: {err}"
        );
        assert!(left.is_empty(), "nothing is left behind: {left:?}");
        hit = true;
        break;
    }
    assert!(hit, "no run was truncated while converting");
}
