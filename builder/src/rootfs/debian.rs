//! Debian package-set input: `mmdebstrap` writes a tar (reproducible with SOURCE_DATE_EPOCH),
//! which the tar reader consumes. nodeimg itself needs no root: as an unprivileged user
//! mmdebstrap runs in `unshare` mode (user namespaces and subuids), as root in `root` mode.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use image_config::DebianSource;

use sha2::{Digest, Sha256};

use super::debcache::DebCache;
use super::tree::Tree;
use crate::tool;

/// Bootstraps `d` into `work/debian-rootfs.tar` and returns that path. With a `cache`, a rootfs
/// bootstrapped before from the same package set is reused, and otherwise mmdebstrap gets the
/// cached `.deb` files and leaves the ones it downloads in the cache (see `debcache`).
pub fn bootstrap(
    d: &DebianSource,
    epoch: u64,
    work: &Path,
    cache: Option<&DebCache>,
) -> Result<(std::path::PathBuf, Option<[u8; 32]>)> {
    if tool::which("mmdebstrap").is_none() {
        anyhow::bail!("mmdebstrap is not installed: `apt-get install mmdebstrap` (needed for [rootfs] debian)");
    }
    let out = work.join("debian-rootfs.tar");
    let Some(cache) = cache else {
        run_mmdebstrap(d, epoch, &out, None)?;
        return Ok((out, None));
    };
    let key = match cache_key(d, epoch) {
        Ok((k, set)) => {
            let (marked, removed) = cache.mark_and_prune_debs(&set);
            tracing::info!(
                "cache: {marked} cached packages are in today's package set; {removed} unused for 30 days removed"
            );
            Some(k)
        }
        Err(e) => {
            tracing::warn!("cache: cannot resolve the package set ({e:#}); bootstrapping without the rootfs cache");
            None
        }
    };
    if let Some(k) = &key {
        if let Some(sha256) = cache.take_rootfs(k, &out)? {
            tracing::info!("cache: rootfs {k} reused (same package set, tools and epoch)");
            return Ok((out, Some(sha256)));
        }
    }
    let seed = cache.tmp_dir()?;
    let (inp, outp) = (seed.path().join("in"), seed.path().join("out"));
    std::fs::create_dir(&inp)?;
    std::fs::create_dir(&outp)?;
    let (used, removed) = cache.seed_debs(&inp)?;
    tracing::info!(
        "cache: {used} cached packages handed to mmdebstrap ({removed} corrupt ones removed)"
    );
    run_mmdebstrap(d, epoch, &out, Some((&inp, &outp)))?;
    let added = cache.store_debs(&outp)?;
    tracing::info!("cache: {added} downloaded packages stored");
    let sha256 = match &key {
        Some(k) => Some(cache.put_rootfs(k, &out)?),
        None => None,
    };
    Ok((out, sha256))
}

/// The mode mmdebstrap runs in: `root` as root, else `unshare` (user namespaces, subuids).
fn mode() -> &'static str {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        "root"
    } else {
        "unshare"
    }
}

/// mmdebstrap's arguments before the output: mode, variant, packages.
fn base_command(d: &DebianSource, epoch: u64) -> Command {
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg(format!("--mode={}", mode()))
        .arg(format!("--variant={}", d.variant))
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("LC_ALL", "C.UTF-8");
    if !d.packages.is_empty() {
        cmd.arg(format!("--include={}", d.packages.join(",")));
    }
    // A fixed umask: the caller's (say 077) would leak into file modes in the rootfs and lock
    // apt's unprivileged download sandbox out of its own list directory.
    // SAFETY: umask is async-signal-safe and touches only the child's state.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0o022);
            Ok(())
        });
    }
    cmd
}

/// `suite TARGET [mirror]`: the positional arguments after the options.
fn positional(cmd: &mut Command, d: &DebianSource, target: &Path) {
    cmd.arg(&d.suite).arg(target);
    if let Some(m) = &d.mirror {
        cmd.arg(m);
    }
}

/// Runs mmdebstrap into `out`; `debs` = (seed directory to sync in, directory to sync the
/// downloaded archives out to).
fn run_mmdebstrap(
    d: &DebianSource,
    epoch: u64,
    out: &Path,
    debs: Option<(&Path, &Path)>,
) -> Result<()> {
    let mut cmd = base_command(d, epoch);
    if let Some((inp, outp)) = debs {
        // mmdebstrap's documented download cache: the archives are synced in before the
        // download step and out before the cleanup step removes them; the rootfs is the same.
        cmd.arg("--skip=essential/unlink")
            .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/")
            .arg(format!(
                "--setup-hook=sync-in {} /var/cache/apt/archives/",
                inp.display()
            ))
            // sync-in gives the directory the outside owner (the invoking user's uid in unshare
            // mode) and mode (umask-dependent), and it stays in the rootfs: back to root and
            // 0755, as without a cache.
            .arg("--setup-hook=chown 0:0 \"$1\"/var/cache/apt/archives && chmod 0755 \"$1\"/var/cache/apt/archives")
            .arg(format!(
                "--customize-hook=sync-out /var/cache/apt/archives {}",
                outp.display()
            ));
    }
    positional(&mut cmd, d, out);
    let mode = mode();
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
    Ok(())
}

/// The rootfs cache key: SHA-256 over the mmdebstrap arguments, the host's mmdebstrap, apt and
/// dpkg versions, SOURCE_DATE_EPOCH and the exact package set (name, version, architecture) apt
/// resolves against the mirror now, from `mmdebstrap --simulate` (~3 s: it fetches the package
/// lists). Debian never reuses a version number for other bytes, so the same key means the same
/// packages and therefore (mmdebstrap being reproducible) the same tar.
fn cache_key(d: &DebianSource, epoch: u64) -> Result<(String, String)> {
    let mut cmd = base_command(d, epoch);
    cmd.args(["--verbose", "--simulate"]);
    positional(&mut cmd, d, Path::new("/dev/null"));
    let probe = tool::run(&mut cmd).context("resolving the package set (mmdebstrap --simulate)")?;
    // mmdebstrap passes apt's simulation output on stderr; stdout is read too, as one text.
    let mut output = probe.stderr;
    output.extend_from_slice(&probe.stdout);
    let set = resolved_packages(&String::from_utf8_lossy(&output));
    anyhow::ensure!(!set.is_empty(), "mmdebstrap --simulate listed no packages");
    let mut h = Sha256::new();
    // v3: entries made before the archives-directory owner and mode fixes are not reused. Bump
    // it whenever the bootstrap command (hooks, options) changes what mmdebstrap writes.
    h.update(b"nodeimg debian rootfs cache v3\n");
    h.update(tool::describe(&cmd).as_bytes());
    h.update(format!("\nSOURCE_DATE_EPOCH={epoch}\n").as_bytes());
    for (prog, arg) in [
        ("mmdebstrap", "--version"),
        ("apt-get", "--version"),
        ("dpkg", "--version"),
    ] {
        let v = tool::run(Command::new(prog).arg(arg))?;
        let first = String::from_utf8_lossy(&v.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        h.update(format!("{prog}: {first}\n").as_bytes());
    }
    h.update(set.as_bytes());
    Ok((hex::encode(h.finalize()), set))
}

/// The sorted, de-duplicated `name version arch` lines of apt's simulated `Inst` lines
/// (`Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []`); the archive labels are
/// left out (they change with point releases, the packages do not).
pub fn resolved_packages(apt_output: &str) -> String {
    let mut set = std::collections::BTreeSet::new();
    for line in apt_output.lines() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(version) = version.strip_prefix('(') else {
            continue;
        };
        let arch = rest
            .split('[')
            .nth(1)
            .and_then(|a| a.split(']').next())
            .unwrap_or("");
        set.insert(format!("{name} {version} {arch}\n"));
    }
    set.into_iter().collect()
}

/// Installed packages and versions from the tree's dpkg status database.
pub fn installed_packages(tree: &Tree) -> Result<BTreeMap<String, String>> {
    let path = tree
        .resolve("var/lib/dpkg/status")
        .context("the rootfs has no /var/lib/dpkg/status")?;
    let text = tree
        .read_file_capped(&path, crate::sbom::STATUS_MAX)?
        .context("/var/lib/dpkg/status: larger than 64 MiB")?;
    let text = String::from_utf8(text).context("/var/lib/dpkg/status is not UTF-8")?;
    parse_status(&text).context("/var/lib/dpkg/status")
}

/// Installed package (`name`, or `name:arch` for other than `all`/`amd64`) → version, from the
/// SBOM's dpkg status parser.
pub fn parse_status(text: &str) -> Result<BTreeMap<String, String>> {
    Ok(crate::sbom::parse_status(text)?
        .into_iter()
        .map(|p| {
            let name = if p.architecture == "all" || p.architecture == "amd64" {
                p.name
            } else {
                format!("{}:{}", p.name, p.architecture)
            };
            (name, p.version)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_parsing_keeps_installed_packages_only() {
        let s = "Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n\
                 Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                 Package: c\nStatus: install ok installed\nArchitecture: i386\nVersion: 3\n";
        let m = super::parse_status(s).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"], "1.0");
        assert_eq!(m["c:i386"], "3");
    }

    #[test]
    fn the_resolved_package_set_ignores_archive_labels_and_repeats() {
        let a = "Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []\n\
                 Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])\n\
                 Inst base-files (12.4+deb12u15 Debian:12.15/oldstable [amd64])\n\
                 Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])\n";
        let b = "I: x\nInst base-files (12.4+deb12u15 Debian:12.16/oldstable [amd64])\n\
                 Inst libc6 (2.36-9+deb12u14 Debian:12.16/oldstable [amd64])\n";
        let set = super::resolved_packages(a);
        assert_eq!(
            set,
            "base-files 12.4+deb12u15 amd64\nlibc6 2.36-9+deb12u14 amd64\n"
        );
        assert_eq!(set, super::resolved_packages(b));
        let c = b.replace("12.4+deb12u15", "12.4+deb12u16");
        assert_ne!(set, super::resolved_packages(&c));
        assert_eq!(super::resolved_packages("nothing here"), "");
    }
}
