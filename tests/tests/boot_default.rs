//! Tier 3: the embedded default node image. It bootstraps Debian with mmdebstrap (network to
//! the Debian archive), so these are the slowest tests: two default builds (reproducibility,
//! one as root and one as an unprivileged user) and three TCG boots.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use nodeimg_tests::*;

fn boot(disk: &Path, log: &Path, expect: &[&str]) -> (bool, String) {
    boot_expect(disk, log, 400, expect)
}

#[test]
fn boot_default_image_is_reproducible_and_reaches_multi_user() {
    if !have_tool("mmdebstrap") || !have_tool("qemu-system-x86_64") || !have_root() {
        return;
    }
    let Some((uid, gid, home)) = unprivileged_user() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // No fake clock here: mmdebstrap's apt and gpgv inherit it and then refuse the archive
    // (expired Valid-Until, "expired" signing keys). Clock independence of nodeimg's own
    // output is shown by the fixture builds in repro.rs (faketime 2031). These two builds show
    // that mmdebstrap + nodeimg reproduce across TMPDIR, umask, and root vs. an unprivileged
    // user (mmdebstrap's root mode vs. its unshare mode in user namespaces).
    // The unprivileged build runs in a directory of its own, with copies of the binaries (the
    // checkout's parents may not be searchable by other users).
    let user_dir = d.path().join("user");
    std::fs::create_dir(&user_dir).unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // One self-contained binary: nodeimg-init is embedded, nothing else is copied.
    let user_nodeimg = user_dir.join("nodeimg");
    std::fs::copy(nodeimg(), &user_nodeimg).unwrap();
    std::os::unix::fs::chown(&user_dir, Some(uid), Some(gid)).unwrap();
    // The root builds use a cache of their own (cold, then warm); the unprivileged one uses its
    // user's default cache ($HOME/.cache/nodeimg).
    let root_cache = d.path().join("cache");
    let build = |out: &Path, tmp: &Path, umask: &str, user: Option<(u32, u32)>| -> String {
        std::fs::create_dir_all(tmp).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(tmp, Some(uid), Some(gid)).unwrap();
        }
        let bin = match user {
            None => nodeimg(),
            Some(_) => user_nodeimg.as_path(),
        };
        let script = format!(
            "umask {umask}; exec {} -v build -o {}",
            bin.display(),
            out.display()
        );
        let mut cmd = match user {
            None => {
                let mut c = Command::new("sh");
                c.env("XDG_CACHE_HOME", &root_cache);
                c
            }
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    "--clear-groups",
                    "sh",
                ])
                .env("HOME", &home)
                .env("USER", "nodeimgci");
                c
            }
        };
        let r = cmd
            .args(["-c", &script])
            .env("TMPDIR", tmp)
            .env_remove("NODEIMG_INIT")
            .output()
            .unwrap();
        assert_ok(
            &r,
            &format!(
                "nodeimg build (default image) as uid {:?}",
                user.map(|u| u.0)
            ),
        );
        String::from_utf8_lossy(&r.stderr).into_owned()
    };
    let same = |x: &Path, y: &Path, what: &str| {
        for f in BUILD_OUTPUTS {
            assert!(
                std::fs::read(x.join(f)).unwrap() == std::fs::read(y.join(f)).unwrap(),
                "default image: {f} differs between {what}"
            );
        }
    };
    let a = d.path().join("a");
    let log = build(&a, &d.path().join("tmp-a"), "022", None);
    assert!(
        log.contains("downloaded packages stored"),
        "cold cache:\n{log}"
    );
    // Warm: the same package set resolves to the cached rootfs; no download, same bytes.
    let warm = d.path().join("warm");
    let log = build(&warm, &d.path().join("tmp-w"), "022", None);
    assert!(
        log.contains("reused (same package set"),
        "warm cache not used:\n{log}"
    );
    same(&a, &warm, "the cold- and the warm-cache build");
    sbom_lists_what_dpkg_query_lists(&a, d.path());
    // A truncated cached .deb is detected and fetched again (the rootfs entries dropped so
    // mmdebstrap runs on the package cache).
    let debs = root_cache.join("nodeimg/debs");
    let libc = std::fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("libc6_") && n.ends_with(".deb")
        })
        .expect("libc6 in the package cache");
    let full = std::fs::metadata(&libc).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&libc)
        .unwrap()
        .set_len(full / 2)
        .unwrap();
    std::fs::remove_dir_all(root_cache.join("nodeimg/rootfs")).unwrap();
    let refetched = d.path().join("refetched");
    let log = build(&refetched, &d.path().join("tmp-r"), "022", None);
    assert!(
        log.contains("does not match its recorded SHA-256")
            && log.contains("1 downloaded packages stored"),
        "truncated cache entry not refetched:\n{log}"
    );
    assert_eq!(
        std::fs::metadata(&libc).unwrap().len(),
        full,
        "libc6 fetched again"
    );
    same(
        &a,
        &refetched,
        "the cold-cache build and the one that refetched a truncated .deb",
    );
    let b = user_dir.join("b");
    build(&b, &user_dir.join("tmp-b"), "077", Some((uid, gid)));
    let owner =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(b.join("disk.raw")).unwrap());
    assert_eq!(owner, uid, "the unprivileged build ran unprivileged");
    same(&a, &b, "the root and the unprivileged build");
    let m = manifest(&a);
    assert!(
        m["inputs"]["rootfs"]["packages"]["systemd"].is_string(),
        "package versions recorded"
    );
    // With swtpm: every manifest PCR (4, 5, 7, 9, 11, 12, 13 in both banks) must equal what the
    // guest reads, and the image must still reach multi-user.target.
    let manifest_path = a.join("manifest.json");
    let (ok, console) = boot_expect_with(
        &a.join("disk.raw"),
        &d.path().join("console.log"),
        400,
        &[
            "nodeimg-init: root verified",
            "Reached target multi-user.target",
        ],
        &["--tpm", "--manifest", manifest_path.to_str().unwrap()],
    );
    assert!(
        ok,
        "default image did not reach multi-user.target with all manifest PCRs equal"
    );
    assert!(!console.contains("FAILED"), "a unit failed:\n{console}");
}

/// The default image's package set plus a probe unit that reports the root mount and writes to
/// /etc and /var; booted twice, the writes must work and be gone on the second boot.
#[test]
fn boot_default_rootfs_is_verified_read_only_with_volatile_etc_and_var() {
    if !have_tool("mmdebstrap") || !have_tool("qemu-system-x86_64") || !have_root() {
        return;
    }
    let base = Command::new(repo().join("scripts/make-bench-rootfs.sh"))
        .output()
        .unwrap();
    assert_ok(&base, "make-bench-rootfs.sh");
    let base = std::path::PathBuf::from(String::from_utf8(base.stdout).unwrap().trim());
    let d = tempfile::tempdir().unwrap();
    let tar = d.path().join("probe.tar");
    std::fs::copy(&base, &tar).unwrap();
    let layer = d.path().join("layer");
    let files: &[(&str, &str, u32)] = &[
        ("usr/local/bin/nodeimg-probe", PROBE, 0o755),
        ("etc/systemd/system/nodeimg-probe.service", UNIT, 0o644),
    ];
    for (p, text, mode) in files {
        let path = layer.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        run_tool(Command::new("chmod").arg(format!("{mode:o}")).arg(&path));
    }
    std::fs::create_dir_all(layer.join("etc/systemd/system/multi-user.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "../nodeimg-probe.service",
        layer.join("etc/systemd/system/multi-user.target.wants/nodeimg-probe.service"),
    )
    .unwrap();
    run_tool(
        Command::new("tar")
            .args([
                "--append",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-f",
            ])
            .arg(&tar)
            .arg("-C")
            .arg(&layer)
            .args(["./usr/local/bin/nodeimg-probe", "./etc/systemd/system"]),
    );
    // The default config with its `debian = { … }` block replaced by the probe tar.
    let default = builder::cli::build::DEFAULT_CONFIG;
    let (start, end) = (
        default.find("debian = {").unwrap(),
        default.find("] }\n").unwrap() + 4,
    );
    let cfg_text = format!(
        "{}tar = \"{}\"\n{}",
        &default[..start],
        tar.display(),
        &default[end..]
    );
    let cfg = d.path().join("image.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let out = d.path().join("out");
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "build probe image",
    );
    for round in 1..=2 {
        let (ok, console) = boot(
            &out.join("disk.raw"),
            &d.path().join(format!("console-{round}.log")),
            &["NODEIMG-PROBE-DONE"],
        );
        assert!(ok, "boot {round} failed");
        assert!(
            console.contains("NODEIMG-PROBE root=/dev/mapper/root ro"),
            "root is not the verified device read-only:\n{console}"
        );
        assert!(
            console.contains("NODEIMG-PROBE-FRESH"),
            "boot {round}: /etc or /var kept a file from an earlier boot:\n{console}"
        );
        assert!(
            console.contains("NODEIMG-PROBE-WRITE-OK"),
            "boot {round}: /etc and /var are not writable:\n{console}"
        );
    }
}

const UNIT: &str = "[Unit]\nDescription=nodeimg test probe\nAfter=local-fs.target\n\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/nodeimg-probe\nStandardOutput=journal+console\n\n[Install]\nWantedBy=multi-user.target\n";

const PROBE: &str = r#"#!/bin/sh
# Reports how the root is mounted and whether /etc and /var are writable and fresh.
lower=$(awk '$2 == "/run/nodeimg/lower" {print $1, substr($4, 1, 2)}' /proc/mounts)
echo "NODEIMG-PROBE root=$lower"
if [ -e /etc/nodeimg-probe ] || [ -e /var/nodeimg-probe ]; then echo NODEIMG-PROBE-PERSISTED; else echo NODEIMG-PROBE-FRESH; fi
echo x > /etc/nodeimg-probe && echo y > /var/nodeimg-probe && [ "$(cat /etc/nodeimg-probe /var/nodeimg-probe)" = "x
y" ] && echo NODEIMG-PROBE-WRITE-OK
echo NODEIMG-PROBE-DONE
"#;

/// The SBOM of the default image (a real Debian rootfs) validates and lists exactly the
/// packages `dpkg-query -W` lists in the root filesystem the disk holds (extracted with
/// fsck.erofs).
fn sbom_lists_what_dpkg_query_lists(out: &Path, tmp: &Path) {
    if !have_tool("fsck.erofs")
        || !have_tool("dpkg-query")
        || !have_python_modules(&["cyclonedx", "packageurl", "jsonschema"])
    {
        return;
    }
    let m = manifest(out);
    let p = m["disk"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "root-x86-64")
        .expect("root partition");
    let img = tmp.join("root.erofs");
    extract(
        &out.join("disk.raw"),
        p["offset"].as_u64().unwrap(),
        p["size"].as_u64().unwrap(),
        &img,
    );
    let x = tmp.join("root-extracted");
    run_tool(
        Command::new("fsck.erofs")
            .arg(format!("--extract={}", x.display()))
            .arg(&img),
    );
    let expected = dpkg_installed(&x.join("var/lib/dpkg"));
    assert!(expected.len() > 100, "dpkg-query: {expected:?}");
    let components = sbom_components(&out.join("sbom.cdx.json"));
    assert_eq!(sbom_packages(&components), expected);
    // Debian's own packages carry DEP-5 copyright files: most have licenses.
    let licensed = components
        .iter()
        .filter(|l| l.split('\t').nth(7).is_some_and(|x| !x.is_empty()))
        .count();
    assert!(
        licensed * 2 > components.len(),
        "{licensed} of {}",
        components.len()
    );
    std::fs::remove_dir_all(&x).unwrap();
    std::fs::remove_file(&img).unwrap();
}
