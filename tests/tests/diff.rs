//! End-to-end `nodeimg diff`: two builds of the fixture in different environments are reported
//! identical; a one-file change in the rootfs and a changed kernel command line are named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use nodeimg_tests::*;

/// Builds `cfg` into `out` under `umask` with its own TMPDIR.
fn build(cfg: &Path, out: &Path, umask: &str) {
    let tmp = out.with_extension("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let script = format!(
        "umask {umask}; exec {} build {} -o {}",
        nodeimg().display(),
        cfg.display(),
        out.display()
    );
    let r = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_remove("NODEIMG_INIT")
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert_ok(&r, &format!("nodeimg build {}", cfg.display()));
}

/// The fixture tar with one content byte of /sbin/init changed (same size, same headers).
fn tar_with_changed_init(tar: &Path, to: &Path) {
    let mut bytes = std::fs::read(tar).unwrap();
    let header = bytes
        .chunks(512)
        .position(|h| h.starts_with(b"./sbin/init\0") || h.starts_with(b"sbin/init\0"))
        .expect("/sbin/init in the fixture tar");
    bytes[(header + 1) * 512 + 3] ^= 0x20;
    std::fs::write(to, bytes).unwrap();
}

struct Builds {
    _dir: tempfile::TempDir,
    a: PathBuf,
    a2: PathBuf,
    changed_file: PathBuf,
    changed_cmdline: PathBuf,
}

/// Four builds shared by the tests: A twice (umask 022 and 077, separate TMPDIRs), A with one
/// changed file, A with a changed kernel command line.
fn builds() -> Option<&'static Builds> {
    static B: OnceLock<Option<Builds>> = OnceLock::new();
    B.get_or_init(|| {
        let tar = fixture_tar()?;
        let d = tempfile::tempdir().unwrap();
        let dir = |n: &str| {
            let p = d.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let cfg_a = fixture_config(&dir("cfg-a"), &tar, "");
        let changed_tar = d.path().join("changed.tar");
        tar_with_changed_init(&tar, &changed_tar);
        let cfg_f = fixture_config(&dir("cfg-f"), &changed_tar, "");
        let text = std::fs::read_to_string(&cfg_a).unwrap();
        let cfg_c = dir("cfg-c").join("image.toml");
        std::fs::write(&cfg_c, text.replace("panic=-1", "panic=-2")).unwrap();
        let b = Builds {
            a: d.path().join("out-a"),
            a2: d.path().join("out-a2"),
            changed_file: d.path().join("out-f"),
            changed_cmdline: d.path().join("out-c"),
            _dir: d,
        };
        build(&cfg_a, &b.a, "022");
        build(&cfg_a, &b.a2, "077");
        build(&cfg_f, &b.changed_file, "022");
        build(&cfg_c, &b.changed_cmdline, "022");
        Some(b)
    })
    .as_ref()
}

fn diff(a: &Path, b: &Path, json: bool) -> Output {
    let mut args = vec!["diff".to_string()];
    if json {
        args.push("--json".into());
    }
    args.extend([a.display().to_string(), b.display().to_string()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    run_nodeimg(&argv)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn two_builds_are_identical() {
    let Some(b) = builds() else { return };
    let r = diff(&b.a, &b.a2, false);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    assert!(
        String::from_utf8_lossy(&r.stdout).ends_with("identical\n"),
        "{}",
        text(&r)
    );
    let j: serde_json::Value = serde_json::from_slice(&diff(&b.a, &b.a2, true).stdout).unwrap();
    assert_eq!(j["identical"], true);
}

#[test]
fn one_changed_file_is_named() {
    let Some(b) = builds() else { return };
    let r = diff(&b.a, &b.changed_file, false);
    let out = text(&r);
    assert_eq!(r.status.code(), Some(1), "{out}");
    assert!(
        out.contains("erofs: /sbin/init: content differs (sha256 "),
        "{out}"
    );
    assert!(out.contains("verity: root hash: value differs"), "{out}");
    assert!(
        out.contains("erofs: 1 difference\n"),
        "only /sbin/init differs in the tree: {out}"
    );
    let j: serde_json::Value =
        serde_json::from_slice(&diff(&b.a, &b.changed_file, true).stdout).unwrap();
    let erofs = j["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "erofs")
        .unwrap();
    assert_eq!(erofs["differences"][0]["item"], "/sbin/init");
    assert_eq!(erofs["differences"][0]["field"], "content");
}

#[test]
fn changed_cmdline_names_the_uki_section() {
    let Some(b) = builds() else { return };
    let (da, dc) = (b.a.join("disk.raw"), b.changed_cmdline.join("disk.raw"));
    let r = diff(&da, &dc, false);
    let out = text(&r);
    assert_eq!(r.status.code(), Some(1), "{out}");
    assert!(out.contains("uki: .cmdline: content differs"), "{out}");
    assert!(
        out.contains("panic=-1") && out.contains("panic=-2"),
        "{out}"
    );
    for same in ["gpt: identical", "verity: identical", "erofs: identical"] {
        assert!(out.contains(same), "{same}: {out}");
    }
}

#[test]
fn usage_and_unreadable_inputs_exit_2() {
    let Some(b) = builds() else { return };
    let r = run_nodeimg(&["diff", b.a.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    let r = diff(&b.a, Path::new("/nonexistent/disk.raw"), false);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    let not_disk = b.a.join("manifest.json");
    let r = diff(&not_disk, &not_disk, false);
    assert_eq!(r.status.code(), Some(0), "identical bytes: {}", text(&r));
    let r = diff(&not_disk, &b.a.join("SHA256SUMS"), false);
    assert_eq!(r.status.code(), Some(2), "not a GPT disk: {}", text(&r));
}

/// Copies disk A, flips the byte at `offset`, and returns the diff output.
fn diff_flipped(b: &Builds, name: &str, offset: u64) -> (Option<i32>, String) {
    let copy = b.a.with_file_name(name);
    std::fs::copy(b.a.join("disk.raw"), &copy).unwrap();
    let mut bytes = std::fs::read(&copy).unwrap();
    bytes[offset as usize] ^= 0x01;
    std::fs::write(&copy, bytes).unwrap();
    let r = diff(&b.a.join("disk.raw"), &copy, false);
    (r.status.code(), text(&r))
}

fn part_offset(m: &serde_json::Value, name: &str) -> u64 {
    m["disk"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()["offset"]
        .as_u64()
        .unwrap()
}

#[test]
fn corruptions_are_attributed_to_their_component() {
    let Some(b) = builds() else { return };
    let m = manifest(&b.a);
    let hash_tree = part_offset(&m, "root-x86-64-verity") + 4096 + 5;
    let table = [
        (
            "gap.raw",
            1024 * 1024 - 1,
            "bytes: disk.raw: bytes differ: first at offset 1048575, outside every partition",
        ),
        (
            "tree.raw",
            hash_tree,
            "verity: hash tree: bytes differ from partition offset 4101",
        ),
    ];
    for (name, offset, want) in table {
        let (code, out) = diff_flipped(b, name, offset);
        assert_eq!(code, Some(1), "{name}: {out}");
        assert!(out.contains(want), "{name}: want {want:?} in\n{out}");
    }
}
