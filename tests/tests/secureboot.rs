//! Tier 2, Secure Boot artifacts against the real tools: `keygen --secure-boot` output parses
//! with efitools and virt-fw-vars (its `.auth` files byte-identical to `sign-efi-sig-list`, its
//! VARS store to `virt-fw-vars`), UKIs signed by `build` / `sign-uki` verify with `sbverify`,
//! `pesign` and `osslsigncode` and are reproducible, PCR 7 predictions follow the keys, and bad
//! keys, certificates and images fail with clear errors and nothing written.

use std::path::{Path, PathBuf};
use std::process::Command;

use nodeimg_tests::*;

/// `nodeimg keygen --secure-boot DIR` with a fixed time (and optionally more arguments).
fn keygen(dir: &Path, epoch: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["keygen", "--secure-boot", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    Command::new(nodeimg())
        .args(&args)
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .unwrap()
}

/// Whether `sbverify --cert CERT IMAGE` accepts the image.
fn sbverify(cert: &Path, image: &Path) -> bool {
    Command::new("sbverify")
        .arg("--cert")
        .arg(cert)
        .arg(image)
        .output()
        .unwrap()
        .status
        .success()
}

fn tools(list: &[&str]) -> bool {
    list.iter().all(|t| have_tool(t))
}

/// Builds the fixture (stub 257) signed with the keys in `keys`; returns the output dir.
fn build_signed(dir: &Path, keys: &Path, name: &str) -> Option<PathBuf> {
    build_fixture(dir, Some(keys), name)
}

/// Builds the fixture (stub 257) into `dir/name/out`, signed with `keys` if given.
fn build_fixture(dir: &Path, keys: Option<&Path>, name: &str) -> Option<PathBuf> {
    let tar = fixture_tar()?;
    let stub = stub(257)?;
    let mut extra = format!("\n[uki]\nstub = \"{}\"\n", stub.display());
    if let Some(k) = keys {
        extra.push_str(&format!("\n[secure-boot]\nkeys = \"{}\"\n", k.display()));
    }
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    let cfg = fixture_config(&sub, &tar, &extra);
    let out = sub.join("out");
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "nodeimg build",
    );
    Some(out)
}

/// A dbx with one SHA-256 entry (the placeholder virt-fw-vars enrolls: sha256 of nothing).
fn placeholder_dbx(path: &Path) {
    let mut v = Vec::new();
    // EFI_CERT_SHA256_GUID c1c41626-504c-4092-aca9-41f936934328, list 76, header 0, entry 48.
    v.extend_from_slice(&[
        0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40, 0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43,
        0x28,
    ]);
    v.extend_from_slice(&76u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&48u32.to_le_bytes());
    v.extend_from_slice(&[0x11; 16]);
    v.extend_from_slice(
        &hex::decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap(),
    );
    std::fs::write(path, v).unwrap();
}

#[test]
fn keygen_output_matches_efitools_and_virt_fw_vars() {
    if !tools(&[
        "sign-efi-sig-list",
        "sig-list-to-certs",
        "virt-fw-vars",
        "openssl",
    ]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    let dbx = d.path().join("dbx.esl");
    placeholder_dbx(&dbx);
    let owner = "11111111-2222-3333-4444-555555555555";
    // 2026-01-01T00:00:00Z
    let out = keygen(
        &keys,
        "1767225600",
        &["--owner-guid", owner, "--dbx", dbx.to_str().unwrap()],
    );
    assert_ok(&out, "keygen --secure-boot");
    for (name, mode) in [
        ("PK.key", 0o600),
        ("db.key", 0o600),
        ("db.crt", 0o644),
        ("OVMF_VARS.fd", 0o644),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(keys.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, mode, "{name}");
    }
    // Each certificate is RSA-2048 with SHA-256, and each list holds exactly it.
    for name in ["PK", "KEK", "db"] {
        let text = run_tool(
            Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in"])
                .arg(keys.join(format!("{name}.crt"))),
        );
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("Public-Key: (2048 bit)") && text.contains("sha256WithRSAEncryption"),
            "{text}"
        );
        let prefix = d.path().join(format!("cert-{name}"));
        run_tool(
            Command::new("sig-list-to-certs")
                .arg(keys.join(format!("{name}.esl")))
                .arg(&prefix),
        );
        assert_eq!(
            std::fs::read(format!("{}-0.der", prefix.display())).unwrap(),
            std::fs::read(keys.join(format!("{name}.cer"))).unwrap(),
            "{name}.esl does not hold {name}.cer"
        );
    }
    // The .auth payloads equal what efitools signs with the same key, parent and time.
    for (var, signer, file) in [
        ("PK", "PK", "PK"),
        ("KEK", "PK", "KEK"),
        ("db", "KEK", "db"),
        ("dbx", "KEK", "dbx"),
    ] {
        let theirs = d.path().join(format!("ref-{file}.auth"));
        run_tool(
            Command::new("sign-efi-sig-list")
                .args(["-t", "2026-01-01 00:00:00", "-c"])
                .arg(keys.join(format!("{signer}.crt")))
                .arg("-k")
                .arg(keys.join(format!("{signer}.key")))
                .arg(var)
                .arg(keys.join(format!("{file}.esl")))
                .arg(&theirs),
        );
        assert!(
            std::fs::read(&theirs).unwrap()
                == std::fs::read(keys.join(format!("{file}.auth"))).unwrap(),
            "{file}.auth differs from sign-efi-sig-list's"
        );
    }
    // The VARS store equals virt-fw-vars' with the same certificates and dbx.
    let vfv = d.path().join("vfv.fd");
    run_tool(
        Command::new("virt-fw-vars")
            .args([
                "--input",
                "/usr/share/OVMF/OVMF_VARS_4M.fd",
                "--set-pk",
                owner,
            ])
            .arg(keys.join("PK.crt"))
            .args(["--add-kek", owner])
            .arg(keys.join("KEK.crt"))
            .args(["--add-db", owner])
            .arg(keys.join("db.crt"))
            .arg("--set-dbx")
            .arg(keys.join("dbx.auth"))
            .args(["--secure-boot", "--output"])
            .arg(&vfv),
    );
    assert!(
        std::fs::read(&vfv).unwrap() == std::fs::read(keys.join("OVMF_VARS.fd")).unwrap(),
        "OVMF_VARS.fd differs from virt-fw-vars' store"
    );
    // A second keygen into the same directory writes nothing and says why.
    let before = std::fs::read(keys.join("db.esl")).unwrap();
    let again = keygen(&keys, "1767225600", &[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(keys.join("db.esl")).unwrap(), before);
}

#[test]
fn keygen_reuses_an_existing_pem_pair() {
    if !tools(&["openssl"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    run_tool(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:3072",
                "-nodes",
                "-sha256",
                "-days",
                "3650",
                "-subj",
                "/CN=my db/",
            ])
            .arg("-keyout")
            .arg(keys.join("db.key"))
            .arg("-out")
            .arg(keys.join("db.crt")),
    );
    let own = std::fs::read(keys.join("db.crt")).unwrap();
    assert_ok(
        &keygen(&keys, "1767225600", &[]),
        "keygen with an existing db pair",
    );
    assert_eq!(std::fs::read(keys.join("db.crt")).unwrap(), own);
    let out = run_tool(
        Command::new("sig-list-to-certs")
            .arg(keys.join("db.esl"))
            .arg(d.path().join("c")),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Written"),
        "{out:?}"
    );
    let text = run_tool(
        Command::new("openssl")
            .args(["x509", "-inform", "der", "-noout", "-subject", "-in"])
            .arg(d.path().join("c-0.der")),
    );
    assert!(String::from_utf8_lossy(&text.stdout).contains("my db"));
}

#[test]
fn signed_builds_verify_with_sbverify_pesign_osslsigncode_and_reproduce() {
    if !tools(&["sbverify", "pesign", "osslsigncode"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    assert_ok(&keygen(&keys, "1767225600", &[]), "keygen");
    let Some(a) = build_signed(d.path(), &keys, "a") else {
        return;
    };
    let b = build_signed(d.path(), &keys, "b").unwrap();
    for f in ["uki.efi", "disk.raw", "manifest.json"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two signed builds"
        );
    }
    let uki = a.join("uki.efi");
    assert!(
        sbverify(&keys.join("db.crt"), &uki),
        "sbverify refused the signed UKI"
    );
    let out = run_tool(Command::new("pesign").arg("-S").arg("-i").arg(&uki));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("The signer's common name is nodeimg db"),
        "{text}"
    );
    assert_eq!(text.matches("certificate address").count(), 1, "{text}");
    let out = run_tool(
        Command::new("osslsigncode")
            .args(["verify", "-in"])
            .arg(&uki)
            .arg("-CAfile")
            .arg(keys.join("db.crt")),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature verification: ok"));
    // The manifest says Secure Boot was on, which keys, and which db entry authorises the UKI.
    let m = manifest(&a);
    assert_eq!(m["secure_boot"]["enabled"], true);
    assert_eq!(m["secure_boot"]["authority"]["subject"], "CN=nodeimg db");
    let mut vars: Vec<&str> = m["secure_boot"]["variables"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    vars.sort();
    assert_eq!(vars, ["KEK", "PK", "db"]);
    assert!(m["pcrs"]["sha384"]["7"].is_string());
    // inspect names the signer.
    let o = run_nodeimg(&["--json", "inspect", a.join("disk.raw").to_str().unwrap()]);
    assert_ok(&o, "inspect");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["signers"], serde_json::json!(["CN=nodeimg db"]));
    // Another certificate and a flipped byte are rejected by sbverify.
    let other = d.path().join("other");
    assert_ok(&keygen(&other, "1767225600", &[]), "keygen other");
    assert!(
        !sbverify(&other.join("db.crt"), &uki),
        "sbverify accepted another certificate"
    );
    let mut bytes = std::fs::read(&uki).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 1;
    let flipped = d.path().join("flipped.efi");
    std::fs::write(&flipped, &bytes).unwrap();
    assert!(
        !sbverify(&keys.join("db.crt"), &flipped),
        "sbverify accepted a modified image"
    );

    // Re-signing replaces the signature: one signature, by the new key only.
    let resigned = d.path().join("resigned.efi");
    assert_ok(
        &run_nodeimg(&[
            "sign-uki",
            uki.to_str().unwrap(),
            "--keys",
            other.to_str().unwrap(),
            "-o",
            resigned.to_str().unwrap(),
        ]),
        "sign-uki (re-sign)",
    );
    assert!(
        sbverify(&other.join("db.crt"), &resigned),
        "the new signature does not verify"
    );
    assert!(
        !sbverify(&keys.join("db.crt"), &resigned),
        "the old signature survived re-signing"
    );
    let out = run_tool(Command::new("pesign").arg("-S").arg("-i").arg(&resigned));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("certificate address")
            .count(),
        1
    );
}

#[test]
fn measure_predicts_pcr7_from_the_enrolled_keys() {
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    assert_ok(&keygen(&keys, "1767225600", &[]), "keygen");
    let Some(out) = build_signed(d.path(), &keys, "a") else {
        return;
    };
    let m = manifest(&out);
    let uki = out.join("uki.efi");
    // `measure disk`: the manifest's PCRs include PCR 5 (the disk's GPT).
    let disk = out.join("disk.raw");
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["measure", "disk", disk.to_str().unwrap(), "--json"];
        all.extend_from_slice(args);
        let o = run_nodeimg(&all);
        assert_ok(&o, &format!("measure uki {args:?}"));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let dir = json(&["--secure-boot", keys.to_str().unwrap()]);
    assert_eq!(dir["pcrs"], m["pcrs"]);
    assert_eq!(dir["secure_boot"], m["secure_boot"]);
    let k = |f: &str| keys.join(f).to_str().unwrap().to_string();
    let (pk, kek, db) = (k("PK.esl"), k("KEK.esl"), k("db.esl"));
    let lists = json(&["--pk", &pk, "--kek", &kek, "--db", &db]);
    assert_eq!(lists["pcrs"], m["pcrs"]);
    // Without keys: Secure Boot off, nothing enrolled (OVMF's default store), observed values.
    let off = json(&[]);
    assert_eq!(
        off["pcrs"]["sha256"]["7"],
        "65caf8dd1e0ea7a6347b635d2b379c93b9a1351edc2afc3ecda700e534eb3068"
    );
    assert_ne!(
        off["pcrs"]["sha256"]["4"], m["pcrs"]["sha256"]["4"],
        "the kernel event must differ"
    );
    assert_eq!(off["pcrs"]["sha256"]["11"], m["pcrs"]["sha256"]["11"]);
    // Keys that do not authorise the UKI: a clear error.
    let other = d.path().join("other");
    assert_ok(&keygen(&other, "1767225600", &[]), "keygen other");
    let o = run_nodeimg(&[
        "measure",
        "uki",
        uki.to_str().unwrap(),
        "--secure-boot",
        other.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("no db certificate authorises the UKI"), "{e}");
}

#[test]
fn bad_keys_certificates_and_images_fail_clearly_and_write_nothing() {
    if !tools(&["openssl"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    assert_ok(&keygen(&keys, "1767225600", &[]), "keygen");
    let Some(out) = build_signed(d.path(), &keys, "a") else {
        return;
    };
    let uki = out.join("uki.efi");
    let target = d.path().join("never.efi");
    let sign = |key: &Path, cert: &Path, image: &Path| {
        run_nodeimg(&[
            "sign-uki",
            image.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--certificate",
            cert.to_str().unwrap(),
            "-o",
            target.to_str().unwrap(),
        ])
    };
    let expect_err = |o: std::process::Output, want: &[&str]| {
        assert!(!o.status.success(), "succeeded: {o:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        for w in want {
            assert!(e.contains(w), "missing {w:?} in: {e}");
        }
        assert!(!target.exists(), "a failed sign-uki wrote its output");
    };
    // A certificate that is not X.509.
    let junk = d.path().join("junk.crt");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    expect_err(
        sign(&keys.join("db.key"), &junk, &uki),
        &["junk.crt", "not an X.509 certificate"],
    );
    // An expired certificate (valid 1990-2010).
    let old = d.path().join("old");
    assert_ok(&keygen(&old, "631152000", &[]), "keygen 1990");
    expect_err(
        sign(&old.join("db.key"), &old.join("db.crt"), &uki),
        &["db.crt", "expired"],
    );
    // An ECDSA key and certificate: the firmware verifies RSA only.
    let ec_key = d.path().join("ec.key");
    let ec_crt = d.path().join("ec.crt");
    run_tool(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=ec/",
            ])
            .arg("-keyout")
            .arg(&ec_key)
            .arg("-out")
            .arg(&ec_crt),
    );
    expect_err(sign(&ec_key, &ec_crt, &uki), &["ec.crt", "not RSA"]);
    // A key that does not belong to the certificate.
    let other = d.path().join("other");
    assert_ok(&keygen(&other, "1767225600", &[]), "keygen other");
    expect_err(
        sign(&other.join("db.key"), &keys.join("db.crt"), &uki),
        &["does not belong to the key"],
    );
    // A truncated certificate table.
    let bytes = std::fs::read(&uki).unwrap();
    let cut = d.path().join("cut.efi");
    std::fs::write(&cut, &bytes[..bytes.len() - 64]).unwrap();
    expect_err(
        sign(&keys.join("db.key"), &keys.join("db.crt"), &cut),
        &["cut.efi", "truncated"],
    );
    // A build whose [secure-boot] certificate is expired: fails before anything is written.
    let tar = fixture_tar().unwrap();
    let sub = d.path().join("bad-build");
    std::fs::create_dir(&sub).unwrap();
    let cfg = fixture_config(
        &sub,
        &tar,
        &format!("\n[secure-boot]\nkeys = \"{}\"\n", old.display()),
    );
    let bad_out = sub.join("out");
    let o = run_nodeimg(&[
        "build",
        cfg.to_str().unwrap(),
        "-o",
        bad_out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("[secure-boot]") && e.contains("expired"), "{e}");
    assert!(!bad_out.join("disk.raw").exists() && !bad_out.join("manifest.json").exists());
}

/// AWS's `nitro-tpm-pcr-compute` (an independent implementation) computes the same SHA-384
/// PCR 4, 7 and 12 from the same UKI and enrolled lists: Secure Boot on with our keys (dbx not
/// enrolled: an empty file), and Secure Boot off with nothing enrolled.
#[test]
fn pcr_4_7_12_equal_nitro_tpm_pcr_compute() {
    if !tools(&["nitro-tpm-pcr-compute"]) {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    assert_ok(&keygen(&keys, "1767225600", &[]), "keygen");
    let Some(signed) = build_signed(d.path(), &keys, "a") else {
        return;
    };
    let plain = build_fixture(d.path(), None, "plain").unwrap();
    let esl = |n: &str| keys.join(n).to_str().unwrap().to_string();
    for (uki, lists) in [
        (
            signed.join("uki.efi"),
            vec![
                "--PK", "PK.esl", "--KEK", "KEK.esl", "--db", "db.esl", "--dbx", "dbx.esl",
            ],
        ),
        (plain.join("uki.efi"), vec![]),
    ] {
        let mut cmd = Command::new("nitro-tpm-pcr-compute");
        cmd.arg("--image").arg(&uki);
        for pair in lists.chunks(2) {
            cmd.arg(pair[0]).arg(esl(pair[1]));
        }
        let theirs: serde_json::Value = serde_json::from_slice(&run_tool(&mut cmd).stdout).unwrap();
        // `nodeimg measure uki --format nitro` prints the same document.
        let mut ours_cmd = vec!["measure", "uki", uki.to_str().unwrap(), "--format", "nitro"];
        let sb = keys.to_str().unwrap().to_string();
        if !lists.is_empty() {
            ours_cmd.extend(["--secure-boot", &sb]);
        }
        let o = run_nodeimg(&ours_cmd);
        assert_ok(&o, "measure uki --format nitro");
        let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            printed, theirs,
            "measure --format nitro vs nitro-tpm-pcr-compute"
        );
        let ours = manifest(uki.parent().unwrap());
        for pcr in ["4", "7", "12"] {
            assert_eq!(
                theirs["Measurements"][format!("PCR{pcr}")],
                ours["pcrs"]["sha384"][pcr],
                "PCR {pcr} of {}",
                uki.display()
            );
        }
    }
}
