//! The SBOM (`sbom.cdx.json`): valid CycloneDX 1.5 by CycloneDX's own validator, the packages
//! `dpkg-query -W` lists for a tree with a dpkg database, every file with its digest otherwise,
//! in the manifest and SHA256SUMS, reproducible; an oversized dpkg database is refused by name.
//! (The real Debian rootfs is compared with dpkg-query in boot_default.rs, tier 3.)

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use nodeimg_tests::*;
use sha2::{Digest, Sha256};

const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
 Contains the standard libraries.
 .
 Package: not-a-package (a continuation line)

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14+deb12u1
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Description: GCC support library

Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5+deb12u3)
Version: 1:2.38.1-5+deb12u3
Maintainer: util-linux packagers <util-linux@packages.debian.org>
Description: basic utilities from 4.4BSD-Lite

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Maintainer: Nobody <nobody@example.org>
Description: gone

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 2
Maintainer: Nobody <nobody@example.org>
Description: not installed
";

const DEP5: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: glibc

Files: *
Copyright: 1991-2023 Free Software Foundation, Inc.
License: LGPL-2.1+
 The GNU C Library is free software.

Files: debian/*
Copyright: 2023 Debian
License: GPL-2+
";

/// The fixture unpacked into `dir/root`, plus a dpkg database and copyright files:
/// libc6 has a DEP-5 file, libgcc-s1's doc directory is a symlink to libc6's, bsdutils has a
/// free-form (non-DEP-5) one.
fn debian_tree(dir: &Path) -> PathBuf {
    let tar = fixture_tar().expect("checked by the caller");
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    run_tool(
        Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&root),
    );
    let dpkg = root.join("var/lib/dpkg");
    std::fs::create_dir_all(&dpkg).unwrap();
    std::fs::write(dpkg.join("status"), STATUS).unwrap();
    let doc = root.join("usr/share/doc");
    std::fs::create_dir_all(doc.join("libc6")).unwrap();
    std::fs::write(doc.join("libc6/copyright"), DEP5).unwrap();
    std::os::unix::fs::symlink("libc6", doc.join("libgcc-s1")).unwrap();
    std::fs::create_dir_all(doc.join("bsdutils")).unwrap();
    std::fs::write(
        doc.join("bsdutils/copyright"),
        "This is the Debian package of util-linux.\nLicense: GPL-2+\n",
    )
    .unwrap();
    root
}

fn build_dir(dir: &Path, root: &Path, name: &str, extra: &str) -> (PathBuf, std::process::Output) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[image]\nname = \"sbom-test\"\nversion = \"7\"\nsource-date-epoch = 1700000000\n\n[rootfs]\ndirectory = \"{}\"\n\n[kernel]\ncmdline = [\"console=ttyS0\"]\n{extra}",
            root.display()
        ),
    )
    .unwrap();
    let out = dir.join(name);
    let o = run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    (out, o)
}

#[test]
fn dpkg_tree_sbom_validates_and_lists_what_dpkg_query_lists() {
    if fixture_tar().is_none()
        || !have_tool("dpkg-query")
        || !have_python_modules(&["cyclonedx", "packageurl", "jsonschema"])
    {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = debian_tree(d.path());
    let key = d.path().join("key");
    assert_ok(
        &run_nodeimg(&["keygen", "-o", key.to_str().unwrap()]),
        "keygen",
    );
    let signing = format!("\n[signing]\nkey = \"{}\"\n", key.display());
    let (out, o) = build_dir(d.path(), &root, "a", &signing);
    assert_ok(&o, "build of a tree with a dpkg database");
    let sbom = out.join("sbom.cdx.json");
    let components = sbom_components(&sbom);
    let expected = dpkg_installed(&root.join("var/lib/dpkg"));
    assert_eq!(expected.len(), 4, "dpkg-query: {expected:?}");
    assert_eq!(sbom_packages(&components), expected);
    // Licenses from DEP-5 files only (followed through the symlinked doc directory); the
    // distribution from the tree's os-release (ID, then ID-VERSION_ID without a codename).
    let line = |name: &str, arch: &str| -> Vec<String> {
        components
            .iter()
            .find(|l| {
                l.starts_with(&format!("pkg\t{name}\t")) && l.split('\t').nth(3) == Some(arch)
            })
            .unwrap_or_else(|| panic!("{name}:{arch} in {components:?}"))
            .split('\t')
            .map(String::from)
            .collect()
    };
    assert_eq!(line("libc6", "amd64")[7], "LGPL-2.1+,GPL-2+");
    assert_eq!(line("libc6", "i386")[7], "LGPL-2.1+,GPL-2+");
    assert_eq!(line("libgcc-s1", "amd64")[7], "LGPL-2.1+,GPL-2+");
    assert_eq!(
        line("bsdutils", "amd64")[7],
        "",
        "a non-DEP-5 file gives no license"
    );
    assert_eq!(
        line("bsdutils", "amd64")[6],
        "nodeimg-fixture/nodeimg-fixture-1"
    );

    // A subject of the signed statement, and in SHA256SUMS.
    let bytes = std::fs::read(&sbom).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    let m = manifest(&out);
    assert_eq!(m["artifacts"]["sbom.cdx.json"]["sha256"], sha.as_str());
    assert_eq!(
        m["artifacts"]["sbom.cdx.json"]["size"].as_u64(),
        Some(bytes.len() as u64)
    );
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&format!("{sha}  sbom.cdx.json\n")), "{sums}");
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.sigstore.json")).unwrap())
            .unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert!(
        statement["subject"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "sbom.cdx.json" && s["digest"]["sha256"] == sha.as_str()),
        "{statement:#}"
    );
    let pubkey = format!("{}.pub", key.display());
    let manifest_path = out.join("manifest.json");
    assert_ok(
        &run_nodeimg(&["verify", manifest_path.to_str().unwrap(), "--key", &pubkey]),
        "nodeimg verify",
    );

    // Deterministic: a second build of the same tree gives the same bytes.
    let (out2, o) = build_dir(d.path(), &root, "b", &signing);
    assert_ok(&o, "second build");
    assert_eq!(std::fs::read(out2.join("sbom.cdx.json")).unwrap(), bytes);

    // The validator can fail: one unknown top-level key and the strict schema refuses it.
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["unexpected"] = serde_json::json!(1);
    let bad = d.path().join("bad.cdx.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let o = Command::new("python3")
        .arg(repo().join("tests/sbom/check.py"))
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "the validator accepted an invalid SBOM"
    );
}

#[test]
fn a_tree_without_dpkg_lists_every_file_with_its_digest() {
    if fixture_tar().is_none() || !have_python_modules(&["cyclonedx", "packageurl", "jsonschema"]) {
        return;
    }
    let tar = fixture_tar().unwrap();
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture_config(d.path(), &tar, "");
    let out = d.path().join("out");
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "fixture build",
    );
    let listed: BTreeSet<String> = sbom_components(&out.join("sbom.cdx.json"))
        .into_iter()
        .collect();
    // Every regular file of the input tar, hashed here.
    let mut expected = BTreeSet::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        expected.insert(format!(
            "file\t/{}\t{}",
            path.trim_start_matches("./"),
            hex::encode(Sha256::digest(&data))
        ));
    }
    assert!(expected.len() >= 3, "{expected:?}");
    assert_eq!(listed, expected);
}

#[test]
fn an_oversized_dpkg_database_is_refused_by_name_and_nothing_is_written() {
    if fixture_tar().is_none() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = debian_tree(d.path());
    // 65 MiB claimed by a sparse file: over the 64 MiB cap, read only up to it.
    let status = std::fs::File::options()
        .write(true)
        .open(root.join("var/lib/dpkg/status"))
        .unwrap();
    status.set_len(65 << 20).unwrap();
    let (out, o) = build_dir(d.path(), &root, "big", "");
    assert!(
        !o.status.success(),
        "an oversized dpkg database was accepted"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/var/lib/dpkg/status") && err.contains("64 MiB"),
        "{err}"
    );
    assert!(!out.exists(), "a failed build left {}", out.display());
}
