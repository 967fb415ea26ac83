//! Signed manifests end to end: `nodeimg keygen/sign/verify` against the real cosign 2.5
//! (both directions), tamper tests through the CLI, key hygiene, and a real fixture build
//! with `[signing] key`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use nodeimg_tests::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const PREDICATE_TYPE: &str = "https://nodeimg.dev/measurements/v1";
const ALGORITHMS: [&str; 2] = ["ed25519", "ecdsa-p256"];

/// A signed fake build output: small artifacts, a manifest with measurement fields, a key
/// pair made by `nodeimg keygen` and `manifest.sigstore.json` made by `nodeimg sign`.
struct Signed {
    dir: tempfile::TempDir,
}

impl Signed {
    fn new(algorithm: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let disk: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(p("disk.raw"), &disk).unwrap();
        std::fs::write(p("uki.efi"), b"MZ not really a UKI").unwrap();
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let manifest = serde_json::json!({
            "schema": "nodeimg.manifest/v1",
            "image": {"name": "fake", "version": "1", "source_date_epoch": 1700000000},
            "artifacts": {
                "disk.raw": {"sha256": sha(&disk), "size": disk.len()},
                "uki.efi": {"sha256": sha(b"MZ not really a UKI"), "size": 19},
            },
            "verity": {"root_hash": "ab".repeat(32)},
            "pcrs": {"sha256": {"4": "11".repeat(32), "11": "22".repeat(32)}},
            "events": [{"pcr": 4, "type": "EV_EFI_ACTION", "description": "x", "digests": {"sha256": "33".repeat(32)}}],
        });
        let mut text = serde_json::to_string_pretty(&manifest).unwrap();
        text.push('\n');
        std::fs::write(p("manifest.json"), text).unwrap();
        let s = Signed { dir };
        s.nodeimg_ok(&["keygen", "-o", &s.arg("key"), "--algorithm", algorithm]);
        s.nodeimg_ok(&["sign", &s.arg("manifest.json"), "--key", &s.arg("key")]);
        s
    }

    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    fn arg(&self, n: &str) -> String {
        self.path(n).to_str().unwrap().to_string()
    }

    fn nodeimg_ok(&self, args: &[&str]) -> Output {
        let out = run_nodeimg(args);
        assert_ok(&out, &format!("nodeimg {}", args.join(" ")));
        out
    }

    /// `nodeimg --json verify` with the bundle and key; (exit ok, report).
    fn verify(&self, bundle: &str, key: &str, extra: &[&str]) -> (bool, Value) {
        let (m, b, k) = (self.arg("manifest.json"), self.arg(bundle), self.arg(key));
        let mut args = vec!["--json", "verify", &m, "--bundle", &b, "--key", &k];
        args.extend_from_slice(extra);
        let out = run_nodeimg(&args);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), report)
    }

    fn cosign(&self) -> Command {
        let mut c = Command::new("cosign");
        c.env("HOME", self.dir.path())
            .env("COSIGN_PASSWORD", "")
            .current_dir(self.dir.path());
        c
    }

    /// The minimal trusted root cosign 2.5 needs for a v0.3 bundle offline.
    fn trusted_root(&self) -> String {
        let p = self.path("trusted_root.json");
        std::fs::write(
            &p,
            r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    }

    fn cosign_verify(&self, key: &str, bundle: &str, blob: &str, ty: &str) -> Output {
        let tr = self.trusted_root();
        self.cosign()
            .args([
                "verify-blob-attestation",
                "--key",
                key,
                "--insecure-ignore-tlog",
            ])
            .args([
                "--type",
                ty,
                "--bundle",
                bundle,
                "--trusted-root",
                &tr,
                blob,
            ])
            .output()
            .expect("run cosign")
    }
}

/// The named check of a verify report: (status, detail).
fn check<'a>(report: &'a Value, name: &str) -> (&'a str, &'a str) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"));
    (c["status"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

fn assert_failed(report: &Value, name: &str, want: &str) {
    let (status, detail) = check(report, name);
    assert_eq!(status, "failed", "{name}: {report:#}");
    assert!(detail.contains(want), "{name}: {detail}\n  want: {want}");
}

#[test]
fn cosign_verifies_nodeimg_bundles() {
    if !have_tool("cosign") {
        return;
    }
    for alg in ALGORITHMS {
        let s = Signed::new(alg);
        for blob in ["disk.raw", "uki.efi", "manifest.json"] {
            let out = s.cosign_verify("key.pub", "manifest.sigstore.json", blob, PREDICATE_TYPE);
            assert_ok(
                &out,
                &format!("cosign verify-blob-attestation {alg} {blob}"),
            );
            assert!(String::from_utf8_lossy(&out.stderr).contains("Verified OK"));
        }
        // And cosign refuses what it should: another blob, another type, another key.
        std::fs::write(s.path("other"), b"other").unwrap();
        let out = s.cosign_verify("key.pub", "manifest.sigstore.json", "other", PREDICATE_TYPE);
        assert!(
            !out.status.success(),
            "{alg}: cosign accepted a blob that is no subject"
        );
        // The envelope alone (cosign's legacy `--signature` path) verifies too, and there
        // cosign 2.5 also checks --type; with --bundle it does not (newer cosign does).
        let bundle: Value =
            serde_json::from_slice(&std::fs::read(s.path("manifest.sigstore.json")).unwrap())
                .unwrap();
        std::fs::write(s.path("env.json"), bundle["dsseEnvelope"].to_string()).unwrap();
        for (ty, good) in [(PREDICATE_TYPE, true), ("https://example.com/other", false)] {
            let out = s
                .cosign()
                .args([
                    "verify-blob-attestation",
                    "--key",
                    "key.pub",
                    "--insecure-ignore-tlog",
                ])
                .args(["--type", ty, "--signature", "env.json", "disk.raw"])
                .output()
                .unwrap();
            assert_eq!(
                out.status.success(),
                good,
                "{alg} --signature --type {ty}: {out:?}"
            );
        }
        s.nodeimg_ok(&["keygen", "-o", &s.arg("k2"), "--algorithm", alg]);
        let out = s.cosign_verify(
            "k2.pub",
            "manifest.sigstore.json",
            "disk.raw",
            PREDICATE_TYPE,
        );
        assert!(!out.status.success(), "{alg}: cosign accepted another key");
    }
}

/// A cosign key pair for `alg`: nodeimg's key imported for Ed25519; for P-256 an import
/// of nodeimg's key if this cosign can (cosign 2.5.0 in Debian rejects every EC key in
/// `import-key-pair` with "error validating ecdsa key: unsupported public key type", also
/// OpenSSL's), else `cosign generate-key-pair`. Returns (cosign private key, public key).
fn cosign_key(s: &Signed, alg: &str) -> (&'static str, &'static str) {
    let out = s
        .cosign()
        .args([
            "import-key-pair",
            "--key",
            "key",
            "--output-key-prefix",
            "imported",
        ])
        .output()
        .unwrap();
    if out.status.success() {
        return ("imported.key", "key.pub");
    }
    assert_eq!(
        alg, "ecdsa-p256",
        "cosign could not import nodeimg's {alg} key: {out:?}"
    );
    eprintln!(
        "NOTE: cosign import-key-pair refused nodeimg's P-256 key ({}); using cosign generate-key-pair",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    run_tool(s.cosign().arg("generate-key-pair"));
    ("cosign.key", "cosign.pub")
}

#[test]
fn nodeimg_verifies_bundles_cosign_made() {
    if !have_tool("cosign") {
        return;
    }
    for alg in ALGORITHMS {
        let s = Signed::new(alg);
        let (key, public) = cosign_key(&s, alg);
        run_tool(s.cosign().args([
            "attest-blob",
            "--key",
            key,
            "--tlog-upload=false",
            "--new-bundle-format",
            "--bundle",
            "cosign-att.json",
            "--type",
            PREDICATE_TYPE,
            "--predicate",
            "manifest.json",
            "manifest.json",
            "-y",
        ]));
        run_tool(s.cosign().args([
            "sign-blob",
            "--key",
            key,
            "--tlog-upload=false",
            "--new-bundle-format",
            "--bundle",
            "cosign-sig.json",
            "manifest.json",
            "-y",
        ]));
        let image = s.arg("disk.raw");
        let (ok, r) = s.verify("cosign-att.json", public, &[]);
        assert!(ok, "{alg} attest-blob bundle: {r:#}");
        let (_, subjects) = check(&r, "subjects");
        assert!(
            subjects.contains("not listed, bound through manifest.json: disk.raw, uki.efi"),
            "{subjects}"
        );
        assert_eq!(check(&r, "predicate").0, "ok");
        // Our manifest has pcrs, so --image also asks for the PCR recomputation, which is
        // a separate check; the disk digest itself must pass.
        // A plain sign-blob signature is refused unless asked for: it does not say it signs
        // a nodeimg manifest.
        let (ok, r) = s.verify("cosign-sig.json", public, &[]);
        assert!(!ok, "{alg} sign-blob bundle accepted by default: {r:#}");
        assert!(
            check(&r, "signature")
                .1
                .contains("--allow-message-signature"),
            "{r:#}"
        );
        let (_, r) = s.verify(
            "cosign-sig.json",
            public,
            &["--image", &image, "--allow-message-signature"],
        );
        for name in ["bundle", "signature", "manifest", "image"] {
            assert_eq!(
                check(&r, name).0,
                "ok",
                "{alg} sign-blob bundle, {name}: {r:#}"
            );
        }
    }
}

/// Rewrites the bundle's JSON through `f` and writes it as `name`.
fn edit_bundle(s: &Signed, name: &str, f: impl FnOnce(&mut Value)) {
    let mut b: Value =
        serde_json::from_slice(&std::fs::read(s.path("manifest.sigstore.json")).unwrap()).unwrap();
    f(&mut b);
    std::fs::write(s.path(name), serde_json::to_vec_pretty(&b).unwrap()).unwrap();
}

fn flip_at(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] ^= 0x01;
    v
}

#[test]
fn tampered_bundles_fail_with_specific_messages() {
    let b64 = base64::engine::general_purpose::STANDARD;
    for alg in ALGORITHMS {
        let s = Signed::new(alg);
        let original = std::fs::read(s.path("manifest.sigstore.json")).unwrap();
        let text = String::from_utf8(original.clone()).unwrap();
        let (ok, r) = s.verify("manifest.sigstore.json", "key.pub", &[]);
        assert!(ok, "{r:#}");
        // Header: a byte inside the mediaType value.
        let at = text.find("bundle.v0.3").unwrap() + 7;
        std::fs::write(s.path("b"), flip_at(&original, at)).unwrap();
        assert_failed(
            &s.verify("b", "key.pub", &[]).1,
            "bundle",
            "unsupported bundle mediaType",
        );
        // Signature: one bit of the decoded signature.
        edit_bundle(&s, "b", |b| {
            let sig = &mut b["dsseEnvelope"]["signatures"][0]["sig"];
            let raw = b64.decode(sig.as_str().unwrap()).unwrap();
            *sig = b64.encode(flip_at(&raw, raw.len() - 5)).into();
        });
        assert_failed(
            &s.verify("b", "key.pub", &[]).1,
            "signature",
            "does not verify with the pinned",
        );
        // Payload: the statement header, the predicate, and each subject digest.
        let payload = b64
            .decode(
                serde_json::from_str::<Value>(&text).unwrap()["dsseEnvelope"]["payload"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        let stmt = String::from_utf8(payload.clone()).unwrap();
        let predicate = stmt.find("\"predicateType\":").unwrap();
        let mut spots = vec![1, predicate + 40];
        spots.extend(
            stmt[..predicate]
                .match_indices("\"sha256\":\"")
                .map(|(i, m)| i + m.len() + 3),
        );
        assert_eq!(spots.len(), 2 + 3, "three subject digests");
        for at in spots {
            edit_bundle(&s, "b", |b| {
                b["dsseEnvelope"]["payload"] = b64.encode(flip_at(&payload, at)).into();
            });
            let (ok, r) = s.verify("b", "key.pub", &[]);
            assert!(!ok);
            assert_failed(
                &r,
                "signature",
                "signature over the DSSE envelope (PAE of payloadType and payload) does not verify",
            );
        }
        // Sampled raw byte flips anywhere in the file all fail somewhere.
        for at in (0..original.len()).step_by(97) {
            std::fs::write(s.path("b"), flip_at(&original, at)).unwrap();
            let (ok, r) = s.verify("b", "key.pub", &[]);
            assert!(!ok, "flipping bundle byte {at} still verifies: {r:#}");
        }
    }
}

#[test]
fn tampered_manifest_or_disk_and_other_keys_fail() {
    let s = Signed::new("ed25519");
    let manifest = std::fs::read(s.path("manifest.json")).unwrap();
    let text = String::from_utf8(manifest.clone()).unwrap();
    // A flipped manifest byte: JSON still valid but a different file.
    let at = text.find("\"4\": \"").unwrap() + 8;
    std::fs::write(s.path("manifest.json"), flip_at(&manifest, at)).unwrap();
    let (ok, r) = s.verify("manifest.sigstore.json", "key.pub", &[]);
    assert!(!ok);
    assert_failed(
        &r,
        "subjects",
        "subject \"manifest.json\": the statement signs sha256:",
    );
    assert_failed(
        &r,
        "predicate",
        "predicate differs from manifest.json at pcrs.sha256.",
    );
    // A flipped byte that breaks the JSON.
    std::fs::write(s.path("manifest.json"), flip_at(&manifest, 0)).unwrap();
    assert_failed(
        &s.verify("manifest.sigstore.json", "key.pub", &[]).1,
        "manifest",
        "not valid JSON",
    );
    std::fs::write(s.path("manifest.json"), &manifest).unwrap();

    // Disk: first, middle and last byte.
    let disk = std::fs::read(s.path("disk.raw")).unwrap();
    let image = s.arg("disk.raw");
    for at in [0, disk.len() / 2, disk.len() - 1] {
        std::fs::write(s.path("disk.raw"), flip_at(&disk, at)).unwrap();
        let (ok, r) = s.verify("manifest.sigstore.json", "key.pub", &["--image", &image]);
        assert!(!ok);
        assert_failed(&r, "image", "disk.raw: the signed manifest says sha256:");
    }
    std::fs::write(s.path("disk.raw"), &disk).unwrap();

    // Another key of either algorithm.
    for alg in ALGORITHMS {
        let other = format!("other-{alg}");
        s.nodeimg_ok(&["keygen", "-o", &s.arg(&other), "--algorithm", alg]);
        let (ok, r) = s.verify("manifest.sigstore.json", &format!("{other}.pub"), &[]);
        assert!(!ok);
        assert_failed(&r, "signature", "is not the pinned key's");
    }
    // Without the hint the signature itself must fail.
    edit_bundle(&s, "nohint.json", |b| {
        b["verificationMaterial"]["publicKey"]["hint"] = "".into()
    });
    let (_, r) = s.verify("nohint.json", "other-ed25519.pub", &[]);
    assert_failed(
        &r,
        "signature",
        "does not verify with the pinned ed25519 key",
    );

    // An unsigned manifest.
    std::fs::remove_file(s.path("manifest.sigstore.json")).unwrap();
    let out = run_nodeimg(&[
        "verify",
        &s.arg("manifest.json"),
        "--key",
        &s.arg("key.pub"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("manifest.json is not signed"), "{err}");
}

/// Every 24-character window of the private key's base64 body.
fn key_windows(key: &Path) -> Vec<String> {
    let pem = std::fs::read_to_string(key).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    (0..=body.len() - 24)
        .map(|i| body[i..i + 24].to_string())
        .collect()
}

fn assert_no_key_material(out: &Output, key: &Path, what: &str) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for w in key_windows(key) {
        assert!(!all.contains(&w), "{what} printed key material: {all}");
    }
}

#[test]
fn private_keys_are_0600_and_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    for alg in ALGORITHMS {
        let s = Signed::new(alg);
        let key = s.path("key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(s.path("key.pub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644
        );
        // Verbose sign (debug logs) and JSON keygen output.
        let mut cmd = Command::new(nodeimg());
        cmd.args([
            "-vv",
            "sign",
            &s.arg("manifest.json"),
            "--key",
            &s.arg("key"),
            "-o",
            &s.arg("b2"),
        ]);
        let out = cmd.env("NODEIMG_LOG", "trace").output().unwrap();
        assert_ok(&out, "nodeimg -vv sign");
        assert_no_key_material(&out, &key, "sign -vv");
        let out = run_nodeimg(&["--json", "keygen", "-o", &s.arg("k3"), "--algorithm", alg]);
        assert_no_key_material(&out, &s.path("k3"), "keygen --json");
        // Refusal to overwrite leaves the key untouched.
        let before = std::fs::read(&key).unwrap();
        let out = run_nodeimg(&["keygen", "-o", &s.arg("key")]);
        assert!(!out.status.success());
        assert_eq!(std::fs::read(&key).unwrap(), before);
        // Errors on a damaged key and on a key given where a public key belongs.
        let pem = String::from_utf8(before).unwrap();
        let last = pem.lines().rev().nth(1).unwrap();
        let cut = &last[..last.len() - 8];
        for (name, damaged) in [
            ("truncated", pem.replace(last, cut)),
            ("bad base64", pem.replace(last, &format!("{cut}!!!!!!!!"))),
        ] {
            assert_ne!(damaged, pem);
            std::fs::write(s.path("damaged"), &damaged).unwrap();
            let out = run_nodeimg(&["sign", &s.arg("manifest.json"), "--key", &s.arg("damaged")]);
            assert!(!out.status.success(), "{alg} {name}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("reading signing key"), "{name}: {err}");
            assert_no_key_material(&out, &key, name);
        }
        let r = run_nodeimg(&["verify", &s.arg("manifest.json"), "--key", &s.arg("key")]);
        assert!(!r.status.success());
        assert!(String::from_utf8_lossy(&r.stderr)
            .contains("this is a private key; pass the public key"));
        assert_no_key_material(&r, &key, "verify with a private key");
    }
}

#[test]
fn fixture_build_with_a_signing_key() {
    let Some(tar) = fixture_tar() else { return };
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("signing.key");
    assert_ok(
        &run_nodeimg(&[
            "keygen",
            "-o",
            key.to_str().unwrap(),
            "--algorithm",
            "ecdsa-p256",
        ]),
        "keygen",
    );
    let cfg = fixture_config(
        d.path(),
        &tar,
        &format!("\n[signing]\nkey = \"{}\"\n", key.display()),
    );
    let out = d.path().join("out");
    let r = run_nodeimg(&[
        "-v",
        "build",
        cfg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_ok(&r, "nodeimg build with [signing]");
    assert_no_key_material(&r, &key, "build -v");
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  manifest.sigstore.json\n"), "{sums}");
    run_tool(
        Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&out),
    );

    let (m, b, k, disk) = (
        out.join("manifest.json"),
        out.join("manifest.sigstore.json"),
        d.path().join("signing.key.pub"),
        out.join("disk.raw"),
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let r = run_nodeimg(&["verify", &s(&m), "--key", &s(&k), "--image", &s(&disk)]);
    assert_ok(&r, "nodeimg verify of the fixture build");
    // Signing is deterministic: the same manifest and key give the same bundle.
    let again = d.path().join("again.json");
    assert_ok(
        &run_nodeimg(&["sign", &s(&m), "--key", &s(&key), "-o", &s(&again)]),
        "sign",
    );
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&b).unwrap());

    if have_tool("cosign") {
        let tr = d.path().join("tr.json");
        std::fs::write(
            &tr,
            r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
        )
        .unwrap();
        let mut c = Command::new("cosign");
        c.env("HOME", d.path()).args([
            "verify-blob-attestation",
            "--key",
            &s(&k),
            "--insecure-ignore-tlog",
            "--type",
            PREDICATE_TYPE,
            "--bundle",
            &s(&b),
            "--trusted-root",
            &s(&tr),
            &s(&disk),
        ]);
        run_tool(&mut c);
    }
}
