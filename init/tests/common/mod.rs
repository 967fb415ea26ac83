//! Helpers shared by the privileged integration tests: loud skips, commands, cleanup guards.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

fn env_is_1(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Skips (returns false) unless root; with NODEIMG_REQUIRE_ROOT=1 not being root fails the test.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        !env_is_1("NODEIMG_REQUIRE_ROOT"),
        "{test}: needs root and NODEIMG_REQUIRE_ROOT=1"
    );
    eprintln!("SKIP: {test}: needs root (set NODEIMG_REQUIRE_ROOT=1 to make this a failure)");
    false
}

/// Skips unless `tool` runs; with NODEIMG_REQUIRE_TOOLS=1 a missing tool fails the test.
pub fn require_tool(test: &str, tool: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        !env_is_1("NODEIMG_REQUIRE_TOOLS"),
        "{test}: `{tool}` is missing and NODEIMG_REQUIRE_TOOLS=1"
    );
    eprintln!(
        "SKIP: {test}: `{tool}` not found (set NODEIMG_REQUIRE_TOOLS=1 to make this a failure)"
    );
    false
}

/// Skips unless the kernel has device-mapper with the verity target (tries `modprobe`);
/// with NODEIMG_REQUIRE_DM=1 a kernel without it fails the test.
pub fn require_dm_verity(test: &str) -> bool {
    let _ = Command::new("modprobe").arg("dm-verity").output();
    let has_dm = Path::new("/sys/class/misc/device-mapper").exists();
    let has_verity = has_dm
        && (Path::new("/sys/module/dm_verity").exists()
            || std::fs::read_to_string("/proc/modules").is_ok_and(|m| m.contains("dm_verity")));
    if has_dm && has_verity {
        return true;
    }
    assert!(
        !env_is_1("NODEIMG_REQUIRE_DM"),
        "{test}: kernel lacks device-mapper/dm-verity and NODEIMG_REQUIRE_DM=1"
    );
    eprintln!(
        "SKIP: {test}: this kernel has no device-mapper with dm-verity (set NODEIMG_REQUIRE_DM=1 to make this a failure)"
    );
    false
}

/// Runs a command, panicking with its argv and stderr on failure; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A name unique to this process and call (for dm names, dirs, UUIDs).
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "nodeimg-init-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A read-only loop device detached on drop.
pub struct Loop {
    pub path: PathBuf,
}

impl Loop {
    /// Attaches `file` read-only; with `partscan`, makes the kernel read its partition table.
    pub fn attach(file: &Path, partscan: bool) -> Loop {
        let mut cmd = Command::new("losetup");
        cmd.args(["--find", "--show", "--read-only"]);
        if partscan {
            cmd.arg("--partscan");
        }
        let path = PathBuf::from(run(cmd.arg(file)).trim());
        let lo = Loop { path };
        if partscan
            && !Path::new(&format!("/sys/class/block/{}/{}p1", lo.name(), lo.name())).exists()
        {
            // Some kernels/containers skip the scan at attach time; ask again.
            let _ = Command::new("partx").arg("-a").arg(&lo.path).output();
        }
        lo
    }

    /// Kernel name, e.g. `loop3`.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).output();
    }
}
