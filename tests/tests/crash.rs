//! Crash-safe outputs: `kill -9` at many points of a build never leaves a partial file under a
//! final name; a full disk gives a clear error and leaves nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nodeimg_tests::*;

const FINAL: [&str; 5] = [
    "disk.raw",
    "uki.efi",
    "manifest.json",
    "sbom.cdx.json",
    "SHA256SUMS",
];

/// Every file under a final name is complete: builds are reproducible, so it must equal the
/// same file of an uninterrupted build (`reference`). Names are renamed into place one by one,
/// SHA256SUMS last.
fn assert_no_partial_file(out: &Path, reference: &Path, when: &str) {
    for f in FINAL {
        if out.join(f).exists() {
            let same =
                std::fs::read(out.join(f)).unwrap() == std::fs::read(reference.join(f)).unwrap();
            assert!(
                same,
                "{when}: {f} exists but differs from a complete build's"
            );
        }
    }
    if out.join("SHA256SUMS").exists() {
        assert!(
            FINAL.iter().all(|f| out.join(f).exists()),
            "{when}: SHA256SUMS before the files it lists"
        );
    }
}

/// Starts `nodeimg build CFG -o OUT` in the background, output discarded.
fn spawn_build(cfg: &Path, out: &Path) -> std::process::Child {
    Command::new(nodeimg())
        .args(["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .env_remove("NODEIMG_INIT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_at_many_points_leaves_no_partial_output() {
    let Some(tar) = fixture_tar() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture_config(d.path(), &tar, "");
    // How long a whole build takes here, to spread the kill points over it.
    let full = Instant::now();
    let probe = d.path().join("probe");
    assert_ok(
        &run_nodeimg(&[
            "build",
            cfg.to_str().unwrap(),
            "-o",
            probe.to_str().unwrap(),
        ]),
        "probe build",
    );
    let span = full.elapsed().as_micros().max(1000) as u64;
    for i in 0..12u64 {
        let out = d.path().join(format!("out-{i}"));
        let mut child = spawn_build(&cfg, &out);
        std::thread::sleep(Duration::from_micros(span * i / 10));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_no_partial_file(&out, &probe, &format!("killed at {}% of a build", i * 10));
    }
}

#[test]
fn full_disk_is_a_clear_error_and_leaves_nothing() {
    let Some(tar) = fixture_tar() else { return };
    if !have_root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture_config(d.path(), &tar, "");
    let mnt = d.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    run_tool(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
            .arg(&mnt),
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    let out = mnt.join("out");
    let r = run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left on device"),
        "no clear ENOSPC error:\n{err}"
    );
    assert!(!out.exists(), "output directory left behind on a full disk");
    let left: Vec<_> = std::fs::read_dir(&mnt).unwrap().collect();
    assert!(
        left.is_empty(),
        "files left on the full filesystem: {left:?}"
    );
}

fn staging_dirs(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".nodeimg-staging-"))
        .collect();
    v.sort();
    v
}

/// A build killed with SIGKILL leaves its staging directory; the next build in the same output
/// directory removes it (its lock is free) but keeps one that a live process still locks.
#[test]
fn next_build_removes_staging_dirs_of_killed_builds_only() {
    use std::os::fd::AsRawFd;
    let Some(tar) = fixture_tar() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture_config(d.path(), &tar, "");
    let out = d.path().join("out");
    // A build killed once its staging directory exists.
    let mut child = spawn_build(&cfg, &out);
    let start = Instant::now();
    while !out.exists() || staging_dirs(&out).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no staging dir appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let killed = staging_dirs(&out);
    assert_eq!(killed.len(), 1, "{killed:?}");
    // A "running build": a staging dir this test process holds the lock of.
    let live = out.join(".nodeimg-staging-live");
    std::fs::create_dir(&live).unwrap();
    let f = std::fs::File::open(&live).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "build after a killed one",
    );
    assert_eq!(staging_dirs(&out), [".nodeimg-staging-live"]);
    for f in FINAL {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    drop(f);
}
