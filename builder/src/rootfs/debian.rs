//! Debian package-set input: `mmdebstrap` writes a tar (reproducible with SOURCE_DATE_EPOCH),
//! which the tar reader consumes. nodeimg itself needs no root: as an unprivileged user
//! mmdebstrap runs in `unshare` mode (user namespaces and subuids), as root in `root` mode.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use image_config::DebianSource;

use super::tree::Tree;
use crate::tool;

/// Bootstraps `d` into `work/debian-rootfs.tar` and returns that path.
pub fn bootstrap(d: &DebianSource, epoch: u64, work: &Path) -> Result<std::path::PathBuf> {
    if tool::which("mmdebstrap").is_none() {
        anyhow::bail!("mmdebstrap is not installed: `apt-get install mmdebstrap` (needed for [rootfs] debian)");
    }
    let out = work.join("debian-rootfs.tar");
    // SAFETY: geteuid has no preconditions.
    let mode = if unsafe { libc::geteuid() } == 0 {
        "root"
    } else {
        "unshare"
    };
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg(format!("--mode={mode}"))
        .arg(format!("--variant={}", d.variant))
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("LC_ALL", "C.UTF-8");
    if !d.packages.is_empty() {
        cmd.arg(format!("--include={}", d.packages.join(",")));
    }
    cmd.arg(&d.suite).arg(&out);
    // A fixed umask: the caller's (say 077) would leak into file modes in the rootfs and lock
    // apt's unprivileged download sandbox out of its own list directory.
    // SAFETY: umask is async-signal-safe and touches only the child's state.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0o022);
            Ok(())
        });
    }
    if let Some(m) = &d.mirror {
        cmd.arg(m);
    }
    tool::run(&mut cmd).with_context(|| {
        format!(
            "bootstrapping Debian {} with mmdebstrap ({mode} mode{})",
            d.suite,
            if mode == "unshare" {
                "; needs user namespaces and /etc/subuid entries for this user"
            } else {
                ""
            }
        )
    })?;
    Ok(out)
}

/// Installed packages and versions from the tree's dpkg status database.
pub fn installed_packages(tree: &Tree) -> Result<BTreeMap<String, String>> {
    let path = tree
        .resolve("var/lib/dpkg/status")
        .context("the rootfs has no /var/lib/dpkg/status")?;
    let text =
        String::from_utf8(tree.read_file(&path)?).context("/var/lib/dpkg/status is not UTF-8")?;
    Ok(parse_status(&text))
}

/// `Package:` → `Version:` for stanzas whose `Status:` ends in `installed`.
pub fn parse_status(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim))
        };
        if let (Some(p), Some(v), Some(st)) =
            (field("Package:"), field("Version:"), field("Status:"))
        {
            if st.ends_with(" installed") {
                let arch = field("Architecture:").filter(|a| *a != "all" && *a != "amd64");
                let name = arch.map_or_else(|| p.to_string(), |a| format!("{p}:{a}"));
                out.insert(name, v.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_parsing_keeps_installed_packages_only() {
        let s = "Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n\
                 Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                 Package: c\nStatus: install ok installed\nArchitecture: i386\nVersion: 3\n";
        let m = super::parse_status(s);
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"], "1.0");
        assert_eq!(m["c:i386"], "3");
    }
}
