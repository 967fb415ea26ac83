//! `nodeimg verify --quote`: TPM quotes made by tpm2-tools (an independent TPM stack) against a
//! standalone swtpm whose PCRs were extended with the signed manifest's expected events —
//! exactly what a TPM that booted the image holds — checked against the fixture build's signed
//! manifest; then the same with a wrong nonce, an extra extend, a flipped signature bit, a
//! selection that misses a pinned PCR and one that includes an unpinned PCR.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nodeimg_tests::*;
use serde_json::Value;

/// A swtpm with SHA-256 and SHA-384 banks on two TCP ports, for tpm2-tools.
struct Tpm {
    child: Child,
    dir: tempfile::TempDir,
    tcti: String,
}

impl Drop for Tpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two free consecutive ports: the swtpm TCTI finds the control channel at port + 1.
fn free_ports() -> (u16, u16) {
    for _ in 0..100 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return (p, p + 1);
        }
    }
    panic!("no two consecutive free TCP ports on 127.0.0.1");
}

impl Tpm {
    fn start() -> Option<Tpm> {
        for t in [
            "swtpm",
            "swtpm_setup",
            "tpm2_quote",
            "tpm2_createak",
            "tpm2_pcrextend",
        ] {
            if !have_tool(t) {
                return None;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        run_tool(
            Command::new("swtpm_setup")
                .args(["--tpm2", "--pcr-banks", "sha256,sha384", "--tpmstate"])
                .arg(&state),
        );
        let (port, ctrl) = free_ports();
        let child = Command::new("timeout")
            .args(["600", "swtpm", "socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"),
            ])
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start swtpm");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "swtpm did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Tpm {
            child,
            dir,
            tcti: format!("swtpm:host=127.0.0.1,port={port}"),
        })
    }

    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    /// One raw TPM command over swtpm's TCP data channel; the response.
    fn raw(&self, cmd: &[u8]) -> Vec<u8> {
        use std::io::{Read, Write};
        let port: u16 = self.tcti.rsplit('=').next().unwrap().parse().unwrap();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(cmd).unwrap();
        let mut head = [0u8; 10];
        s.read_exact(&mut head).unwrap();
        let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let mut rest = vec![0u8; size - 10];
        s.read_exact(&mut rest).unwrap();
        let mut resp = head.to_vec();
        resp.extend(rest);
        resp
    }

    /// A tpm2-tools command; transient objects and sessions are flushed afterwards (there is
    /// no resource manager between the tools and swtpm).
    fn tool(&self, args: &[&str]) -> Output {
        let out = run_tool(
            Command::new("timeout")
                .arg("60")
                .args(args)
                .env("TPM2TOOLS_TCTI", &self.tcti)
                .current_dir(self.dir.path()),
        );
        for what in ["-t", "-s"] {
            let _ = Command::new("tpm2_flushcontext")
                .arg(what)
                .env("TPM2TOOLS_TCTI", &self.tcti)
                .output();
        }
        out
    }

    /// Extends every event of the manifest, in order, into both banks.
    fn extend_events(&self, events: &[Value]) {
        for e in events {
            let pcr = e["pcr"].as_u64().unwrap();
            let d = &e["digests"];
            let spec = format!(
                "{pcr}:sha256={},sha384={}",
                d["sha256"].as_str().unwrap(),
                d["sha384"].as_str().unwrap()
            );
            self.tool(&["tpm2_pcrextend", &spec]);
        }
    }

    /// An attestation key under the EK: `alg` ecc/rsa, `scheme` ecdsa/rsassa/rsapss; the key's
    /// context and its SPKI PEM.
    fn ak(&self, name: &str, alg: &str, scheme: &str) -> (String, String) {
        let ek = format!("{name}-ek.ctx");
        let (ctx, pem) = (format!("{name}.ctx"), format!("{name}.pem"));
        self.tool(&[
            "tpm2_createek",
            "-c",
            &ek,
            "-G",
            alg,
            "-u",
            &format!("{name}-ek.pub"),
        ]);
        self.tool(&[
            "tpm2_createak",
            "-C",
            &ek,
            "-c",
            &ctx,
            "-G",
            alg,
            "-g",
            "sha256",
            "-s",
            scheme,
            "-u",
            &pem,
            "-f",
            "pem",
            "-n",
            &format!("{name}.name"),
        ]);
        (ctx, self.path(&pem).to_str().unwrap().to_string())
    }

    /// `tpm2_quote` of `selection` with `nonce`; the message and signature files.
    fn quote(&self, ak: &str, selection: &str, nonce: &str, name: &str) -> (String, String) {
        let (m, s) = (format!("{name}.msg"), format!("{name}.sig"));
        let mut args = vec![
            "tpm2_quote",
            "-c",
            ak,
            "-l",
            selection,
            "-q",
            nonce,
            "-m",
            &m,
            "-s",
            &s,
            "-g",
            "sha256",
        ];
        // An RSA key made for RSAPSS still needs the scheme named (tpm2-tools' default is
        // RSASSA).
        if ak.starts_with("pss") {
            args.extend(["--scheme", "rsapss"]);
        }
        self.tool(&args);
        (
            self.path(&m).to_str().unwrap().into(),
            self.path(&s).to_str().unwrap().into(),
        )
    }
}

/// A signed fixture build: (temp dir, manifest path, public key path).
fn signed_build() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    let tar = fixture_tar()?;
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
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "fixture build",
    );
    let public = d.path().join("signing.key.pub");
    Some((d, out.join("manifest.json"), public))
}

/// `nodeimg --json verify` with the quote; (exit ok, check name → (status, detail)).
fn verify_quote(
    manifest: &Path,
    key: &Path,
    msg: &str,
    sig: &str,
    ak: &str,
    nonce: &str,
) -> (bool, Vec<(String, String, String)>) {
    let out = run_nodeimg(&[
        "--json",
        "verify",
        manifest.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--quote",
        msg,
        "--quote-signature",
        sig,
        "--ak",
        ak,
        "--nonce",
        nonce,
    ]);
    report_checks(&out)
}

/// `nodeimg --json verify`'s exit status and (check, status, detail) lines.
fn report_checks(out: &std::process::Output) -> (bool, Vec<(String, String, String)>) {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (out.status.success(), checks)
}

fn status<'a>(checks: &'a [(String, String, String)], name: &str) -> (&'a str, &'a str) {
    checks
        .iter()
        .find(|c| c.0 == name)
        .map(|c| (c.1.as_str(), c.2.as_str()))
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

/// The pinned PCRs as a tpm2-tools selection (`sha256:4,7,9,…`).
fn pinned_selection(manifest: &Value, bank: &str) -> String {
    let mut pcrs: Vec<u32> = manifest["pcrs"][bank]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    pcrs.sort_unstable();
    let list: Vec<String> = pcrs.iter().map(u32::to_string).collect();
    format!("{bank}:{}", list.join(","))
}

#[test]
fn tpm2_tools_quotes_of_the_expected_events_verify_and_deviations_are_named() {
    let Some(tpm) = Tpm::start() else { return };
    let Some((_d, manifest_path, key)) = signed_build() else {
        return;
    };
    let manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    tpm.extend_events(manifest["events"].as_array().unwrap());
    let sel = pinned_selection(&manifest, "sha256");
    let nonce = "5e1ec7ed0ddba11cafef00d5deadbeef";

    for (name, alg, scheme) in [
        ("ecc", "ecc", "ecdsa"),
        ("rsa", "rsa", "rsassa"),
        ("pss", "rsa", "rsapss"),
    ] {
        let (ak_ctx, ak_pem) = tpm.ak(name, alg, scheme);
        let (msg, sig) = tpm.quote(&ak_ctx, &sel, nonce, &format!("{name}-ok"));
        let (ok, checks) = verify_quote(&manifest_path, &key, &msg, &sig, &ak_pem, nonce);
        assert!(ok, "{name}: {checks:#?}");
        for c in [
            "quote",
            "quote-signature",
            "quote-nonce",
            "quote-selection",
            "quote-pcrs",
        ] {
            assert_eq!(status(&checks, c).0, "ok", "{name} {c}: {checks:#?}");
        }
        assert!(
            status(&checks, "quote-signature").1.contains(scheme),
            "{checks:#?}"
        );
    }
    // nodeimg-init's own quote (the commands it sends to /dev/tpm0 at boot), against the same
    // TPM: both banks of the pinned PCRs, verified like a tpm2-tools quote.
    let (handle, spki) = nodeimg_init::quote::parse_create_primary(
        &tpm.raw(&nodeimg_init::quote::create_primary_command()),
    )
    .unwrap();
    let nonce_bytes = hex::decode(nonce).unwrap();
    let (attest, signature) = nodeimg_init::quote::parse_quote(
        &tpm.raw(&nodeimg_init::quote::quote_command(handle, &nonce_bytes)),
    )
    .unwrap();
    let init_dir = tpm.path("init");
    std::fs::create_dir(&init_dir).unwrap();
    let (im, is, ia) = (
        init_dir.join("q.msg"),
        init_dir.join("q.sig"),
        init_dir.join("ak.pem"),
    );
    std::fs::write(&im, &attest).unwrap();
    std::fs::write(&is, &signature).unwrap();
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&spki)
    };
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    std::fs::write(&ia, pem).unwrap();
    let (ok, checks) = verify_quote(
        &manifest_path,
        &key,
        im.to_str().unwrap(),
        is.to_str().unwrap(),
        ia.to_str().unwrap(),
        nonce,
    );
    assert!(ok, "nodeimg-init's quote: {checks:#?}");
    assert!(
        status(&checks, "quote-selection")
            .1
            .contains("sha256, sha384"),
        "{checks:#?}"
    );

    let (ak_ctx, ak_pem) = tpm.ak("main", "ecc", "ecdsa");
    let (msg, sig) = tpm.quote(&ak_ctx, &sel, nonce, "main");

    // The verifier sent another nonce: a replayed quote.
    let (ok, checks) = verify_quote(&manifest_path, &key, &msg, &sig, &ak_pem, "00112233");
    assert!(!ok);
    let (st, why) = status(&checks, "quote-nonce");
    assert_eq!(st, "failed");
    assert!(why.contains(nonce), "{why}");

    // One bit of the signature flipped.
    let mut bytes = std::fs::read(&sig).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let bad_sig = tpm.path("flipped.sig");
    std::fs::write(&bad_sig, bytes).unwrap();
    let (ok, checks) = verify_quote(
        &manifest_path,
        &key,
        &msg,
        bad_sig.to_str().unwrap(),
        &ak_pem,
        nonce,
    );
    assert!(!ok);
    assert_eq!(
        status(&checks, "quote-signature").0,
        "failed",
        "{checks:#?}"
    );
    assert_eq!(status(&checks, "quote-pcrs").0, "skipped", "{checks:#?}");

    // Another AK's public key.
    let (_, other_pem) = tpm.ak("other", "ecc", "ecdsa");
    let (ok, checks) = verify_quote(&manifest_path, &key, &msg, &sig, &other_pem, nonce);
    assert!(!ok);
    assert_eq!(
        status(&checks, "quote-signature").0,
        "failed",
        "{checks:#?}"
    );

    // A selection that leaves out a pinned PCR.
    let (m2, s2) = tpm.quote(&ak_ctx, "sha256:4,7,9,11,12", nonce, "partial");
    let (ok, checks) = verify_quote(&manifest_path, &key, &m2, &s2, &ak_pem, nonce);
    assert!(!ok);
    let (st, why) = status(&checks, "quote-selection");
    assert_eq!(st, "failed");
    assert!(why.contains("13"), "{why}");

    // An unpinned, platform PCR quoted without an event log to account for it.
    let with0 = format!("sha256:0,{}", sel.trim_start_matches("sha256:"));
    let (m3, s3) = tpm.quote(&ak_ctx, &with0, nonce, "with0");
    let (ok, checks) = verify_quote(&manifest_path, &key, &m3, &s3, &ak_pem, nonce);
    assert!(!ok);
    let (st, why) = status(&checks, "quote-pcrs");
    assert_eq!(st, "failed");
    assert!(why.contains("PCR 0"), "{why}");

    // One more extend of PCR 12 (as a credential or an addon the manifest does not know
    // would): the quoted digest is no longer the manifest's.
    tpm.tool(&["tpm2_pcrextend", &format!("12:sha256={}", "ab".repeat(32))]);
    let (m4, s4) = tpm.quote(&ak_ctx, &sel, nonce, "extended");
    let (ok, checks) = verify_quote(&manifest_path, &key, &m4, &s4, &ak_pem, nonce);
    assert!(!ok);
    let (st, why) = status(&checks, "quote-pcrs");
    assert_eq!(st, "failed");
    assert!(why.contains("digest"), "{why}");
}

/// The `sev` crate's source directory (its test data: a real Milan attestation report and the
/// VCEK that signed it), from `cargo metadata`. The crate is a dependency of this workspace,
/// so failing to find it is a failure, not a skip; only test data missing from its package is
/// a (loud) skip.
fn sev_crate_dir() -> Option<PathBuf> {
    let out = run_tool(
        Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .current_dir(repo()),
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let pkg = v["packages"]
        .as_array()
        .expect("cargo metadata packages")
        .iter()
        .find(|p| p["name"] == "sev")
        .expect("the sev crate among the workspace's packages");
    let dir = Path::new(pkg["manifest_path"].as_str().expect("manifest_path"))
        .parent()
        .expect("the sev crate's directory")
        .to_path_buf();
    have_file(
        &dir.join("tests/certs_data/report_milan.hex"),
        "the sev crate's package ships its test data",
    )
    .then_some(dir)
}

/// A manifest with one SNP entry of `measurement`, signed; (manifest, public key).
fn signed_snp_manifest(dir: &Path, measurement: &str) -> (String, String) {
    signed_snp_manifest_with(dir, &measurement[..8], measurement, serde_json::json!({}))
}

/// The same with `extra` fields in the entry (`policy`, `id_block`), in directory `tag`.
fn signed_snp_manifest_with(
    dir: &Path,
    tag: &str,
    measurement: &str,
    extra: Value,
) -> (String, String) {
    // Each manifest in its own directory: the bundle goes next to it.
    let sub = dir.join(tag);
    std::fs::create_dir_all(&sub).unwrap();
    let m = sub.join("manifest.json");
    let mut entry = serde_json::json!({
        "vcpus": 4, "vcpu_type": "EPYC-Milan", "vcpu_sig": "0xa00f11", "vmm_type": "QEMU",
        "guest_features": "0x1", "ovmf_sha256": "00".repeat(32), "measurement": measurement,
    });
    for (k, v) in extra.as_object().unwrap() {
        entry[k] = v.clone();
    }
    let doc = serde_json::json!({
        "schema": "nodeimg.manifest/v1",
        "artifacts": {},
        "snp": [entry],
    });
    std::fs::write(&m, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let key = dir.join("snp.key");
    if !key.exists() {
        assert_ok(
            &run_nodeimg(&["keygen", "-o", key.to_str().unwrap()]),
            "keygen",
        );
    }
    assert_ok(
        &run_nodeimg(&["sign", m.to_str().unwrap(), "--key", key.to_str().unwrap()]),
        "sign",
    );
    (m.to_str().unwrap().into(), format!("{}.pub", key.display()))
}

fn verify_snp(
    m: &str,
    key: &str,
    report: &Path,
    vcek: &Path,
    nonce: &str,
    extra: &[&str],
) -> (bool, Vec<(String, String, String)>) {
    let mut args = vec![
        "--json",
        "verify",
        m,
        "--key",
        key,
        "--snp-report",
        report.to_str().unwrap(),
        "--vcek",
        vcek.to_str().unwrap(),
        "--nonce",
        nonce,
    ];
    args.extend_from_slice(extra);
    report_checks(&run_nodeimg(&args))
}

#[test]
fn a_real_milan_report_verifies_against_amds_chain_and_the_manifest() {
    let Some(sev) = sev_crate_dir() else { return };
    let data = sev.join("tests/certs_data");
    let hex_text = std::fs::read_to_string(data.join("report_milan.hex")).unwrap();
    let bytes = hex::decode(hex_text.trim()).unwrap();
    assert_eq!(bytes.len(), 1184);
    let d = tempfile::tempdir().unwrap();
    let report = d.path().join("report.bin");
    std::fs::write(&report, &bytes).unwrap();
    let vcek = data.join("vcek_milan.der");
    let report_data = hex::encode(&bytes[0x50..0x90]);
    let measurement = hex::encode(&bytes[0x90..0xc0]);

    let (m, key) = signed_snp_manifest(d.path(), &measurement);
    let (ok, checks) = verify_snp(&m, &key, &report, &vcek, &report_data, &[]);
    assert!(ok, "{checks:#?}");
    for c in [
        "snp-report",
        "snp-vcek",
        "snp-signature",
        "snp-report-data",
        "snp-policy",
        "snp-measurement",
    ] {
        assert_eq!(status(&checks, c).0, "ok", "{c}: {checks:#?}");
    }
    assert!(
        status(&checks, "snp-vcek").1.contains("Milan"),
        "{checks:#?}"
    );

    // A manifest for another launch: the measurement is named.
    let (other, _) = signed_snp_manifest(d.path(), &"ab".repeat(48));
    let (ok, checks) = verify_snp(&other, &key, &report, &vcek, &report_data, &[]);
    assert!(!ok);
    let (st, why) = status(&checks, "snp-measurement");
    assert_eq!(st, "failed");
    assert!(why.contains(&measurement), "{why}");

    // The manifest records the policy the report has (0x30000): checked; another one (no
    // SMT) is refused — the same digest launched with another policy.
    let (m30, _) = signed_snp_manifest_with(
        d.path(),
        "policy-30000",
        &measurement,
        serde_json::json!({"policy": "0x30000"}),
    );
    let (ok, checks) = verify_snp(&m30, &key, &report, &vcek, &report_data, &[]);
    assert!(
        ok && status(&checks, "snp-report-policy").0 == "ok",
        "{checks:#?}"
    );
    let (m20, _) = signed_snp_manifest_with(
        d.path(),
        "policy-20000",
        &measurement,
        serde_json::json!({"policy": "0x20000"}),
    );
    let (ok, checks) = verify_snp(&m20, &key, &report, &vcek, &report_data, &[]);
    assert!(!ok);
    let (st, why) = status(&checks, "snp-report-policy");
    assert!(
        st == "failed" && why.contains("POLICY 0x30000 is not the manifest's 0x20000"),
        "{why}"
    );
    // The manifest has an ID block for the digest; the report (launched without one) has zero
    // ID fields: refused.
    let id_block = serde_json::json!({
        "block": "", "auth": "", "family_id": "00".repeat(16), "image_id": "00".repeat(16),
        "guest_svn": 0, "id_key_digest": "ab".repeat(48),
    });
    let (mid, _) = signed_snp_manifest_with(
        d.path(),
        "id-block",
        &measurement,
        serde_json::json!({"policy": "0x30000", "id_block": id_block}),
    );
    let (ok, checks) = verify_snp(&mid, &key, &report, &vcek, &report_data, &[]);
    assert!(!ok);
    let (st, why) = status(&checks, "snp-report-id");
    assert!(
        st == "failed" && why.contains("ID_KEY_DIGEST 000000"),
        "{why}"
    );

    // Another nonce.
    let (ok, checks) = verify_snp(&m, &key, &report, &vcek, "0badc0de", &[]);
    assert!(!ok);
    assert_eq!(
        status(&checks, "snp-report-data").0,
        "failed",
        "{checks:#?}"
    );

    // One byte of the report flipped (inside FAMILY_ID): the signature fails.
    let mut flipped = bytes.clone();
    flipped[0x15] ^= 0x80;
    let bad = d.path().join("flipped.bin");
    std::fs::write(&bad, &flipped).unwrap();
    let (ok, checks) = verify_snp(&m, &key, &bad, &vcek, &report_data, &[]);
    assert!(!ok);
    assert_eq!(status(&checks, "snp-signature").0, "failed", "{checks:#?}");
    assert_eq!(
        status(&checks, "snp-measurement").0,
        "skipped",
        "{checks:#?}"
    );

    // A VCEK of another product (Turin) under Milan's ARK/ASK.
    let builtin = sev.join("src/certs/snp/builtin/milan");
    let (ark, ask) = (builtin.join("ark.pem"), builtin.join("ask.pem"));
    let (ok, checks) = verify_snp(
        &m,
        &key,
        &report,
        &data.join("vcek_turin.der"),
        &report_data,
        &[
            "--ark",
            ark.to_str().unwrap(),
            "--ask",
            ask.to_str().unwrap(),
        ],
    );
    assert!(!ok);
    let (st, why) = status(&checks, "snp-vcek");
    assert_eq!(st, "failed");
    assert!(why.contains("does not chain"), "{why}");
    // The right chain given explicitly.
    let (ok, checks) = verify_snp(
        &m,
        &key,
        &report,
        &vcek,
        &report_data,
        &[
            "--ark",
            ark.to_str().unwrap(),
            "--ask",
            ask.to_str().unwrap(),
        ],
    );
    assert!(ok, "{checks:#?}");

    // A truncated report.
    let short = d.path().join("short.bin");
    std::fs::write(&short, &bytes[..1000]).unwrap();
    let (ok, checks) = verify_snp(&m, &key, &short, &vcek, &report_data, &[]);
    assert!(!ok);
    assert!(
        status(&checks, "snp-report").1.contains("1184"),
        "{checks:#?}"
    );
}

#[test]
fn host_and_init_agree_on_the_quote_protocol() {
    use builder::qemu::quote as host;
    use nodeimg_init::quote as init;
    assert_eq!(host::REQUEST_MAGIC, init::REQUEST_MAGIC);
    assert_eq!(host::LINE, init::LINE);
    assert_eq!(host::ERROR_LINE, init::ERROR_LINE);
    assert_eq!(host::NONCE_MAX, init::NONCE_MAX);
    // A request disk the host writes is one the init reads.
    let d = tempfile::tempdir().unwrap();
    let disk = host::request_disk(d.path(), b"nonce").unwrap();
    let bytes = std::fs::read(disk).unwrap();
    assert_eq!(
        init::parse_request(&bytes[..512]),
        Some(Ok(b"nonce".to_vec()))
    );
    assert!(host::request_disk(d.path(), &[0; 65]).is_err());
}
