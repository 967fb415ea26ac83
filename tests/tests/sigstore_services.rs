//! Signing through Sigstore services, against a local Sigstore stack made of Sigstore's own
//! mock Fulcio (with its CT log), Rekor v1 and timestamp authority (npm `@sigstore/mock`,
//! served on 127.0.0.1 by tests/sigstore-mock/server.js, one stack per test). Each bundle
//! nodeimg makes is checked by three independent verifiers: nodeimg (sigstore-rust), cosign
//! 2.5 (sigstore-go) and sigstore-js (`@sigstore/verify`); tampered bundles and wrong policies
//! must fail in all three.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use nodeimg_tests::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const PREDICATE_TYPE: &str = "https://nodeimg.dev/measurements/v1";
const IDENTITY: &str =
    "https://github.com/acme/node-images/.github/workflows/release.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn mock_dir() -> PathBuf {
    repo().join("tests/sigstore-mock")
}

/// A running local Sigstore stack; stopped (and its directory removed) on drop.
struct Stack {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Stack {
    /// Starts a stack whose CA clock is `ca_clock_offset` seconds off, or `None` (a loud skip,
    /// a failure under NODEIMG_REQUIRE_TOOLS=1) when Node.js or the npm packages are missing.
    fn start(ca_clock_offset: i64) -> Option<Stack> {
        let installed = mock_dir().join("node_modules/@sigstore/mock/package.json");
        if !have_tool("node")
            || !have_file(
                &installed,
                "scripts/test.sh runs npm ci in tests/sigstore-mock",
            )
        {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("timeout")
            .args(["900", "node"])
            .arg(mock_dir().join("server.js"))
            .arg("--out")
            .arg(dir.path())
            .args(["--ca-clock-offset", &ca_clock_offset.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Sigstore mock stack");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the Sigstore mock stack did not start within 60 s");
        let url = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the Sigstore mock stack said {line:?}"))
            .to_string();
        Some(Stack { child, dir, url })
    }

    fn trusted_root(&self) -> String {
        self.dir
            .path()
            .join("trusted_root.json")
            .to_str()
            .unwrap()
            .into()
    }

    /// The flags that point `nodeimg sign` at this stack (with its TSA when `tsa`).
    fn sign_flags(&self, tsa: bool) -> Vec<String> {
        let mut f = vec![
            "--fulcio-url".to_string(),
            self.url.clone(),
            "--rekor-url".into(),
            self.url.clone(),
            "--trusted-root".into(),
            self.trusted_root(),
        ];
        if tsa {
            f.extend(["--tsa-url".into(), format!("{}/api/v1/timestamp", self.url)]);
        }
        f
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An unsigned OIDC token (the mock Fulcio reads its claims without checking a signature, as
/// the real one would after checking it): subject `sub`, issuer `iss`, expiring in `exp_in`
/// seconds.
fn token(sub: &str, iss: &str, exp_in: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let b64u = |v: Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64u(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        b64u(serde_json::json!({
            "iss": iss, "sub": sub, "aud": "sigstore", "iat": now, "exp": now + exp_in,
        }))
    )
}

/// A fake build output to sign: disk.raw, uki.efi and a manifest naming them.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let disk = noise(65536, 7);
        std::fs::write(p("disk.raw"), &disk).unwrap();
        std::fs::write(p("uki.efi"), b"MZ not a UKI").unwrap();
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let manifest = serde_json::json!({
            "schema": "nodeimg.manifest/v1",
            "image": {"name": "fake", "version": "1", "source_date_epoch": 1700000000},
            "artifacts": {
                "disk.raw": {"sha256": sha(&disk), "size": disk.len()},
                "uki.efi": {"sha256": sha(b"MZ not a UKI"), "size": 12},
            },
            "pcrs": {"sha256": {"11": "22".repeat(32)}},
        });
        let mut text = serde_json::to_string_pretty(&manifest).unwrap();
        text.push('\n');
        std::fs::write(p("manifest.json"), text).unwrap();
        Work { dir }
    }

    fn arg(&self, n: &str) -> String {
        self.dir.path().join(n).to_str().unwrap().to_string()
    }

    fn write(&self, n: &str, bytes: &[u8]) -> String {
        std::fs::write(self.dir.path().join(n), bytes).unwrap();
        self.arg(n)
    }

    fn read_json(&self, n: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join(n)).unwrap()).unwrap()
    }

    /// `nodeimg sign manifest.json --keyless` with the token in a file; the output.
    fn sign_keyless(&self, stack: &Stack, tok: &str, bundle: &str, tsa: bool) -> Output {
        let t = self.write("token", tok.as_bytes());
        let (m, b) = (self.arg("manifest.json"), self.arg(bundle));
        let mut args = vec![
            "sign",
            &m,
            "--keyless",
            "--identity-token-file",
            &t,
            "-o",
            &b,
        ];
        let flags = stack.sign_flags(tsa);
        args.extend(flags.iter().map(String::as_str));
        run_nodeimg(&args)
    }

    /// `nodeimg --json verify` with `policy` flags; (exit ok, report).
    fn verify(&self, stack: &Stack, bundle: &str, policy: &[&str]) -> (bool, Value) {
        let (m, b, tr) = (
            self.arg("manifest.json"),
            self.arg(bundle),
            stack.trusted_root(),
        );
        let mut args = vec![
            "--json",
            "verify",
            &m,
            "--bundle",
            &b,
            "--trusted-root",
            &tr,
        ];
        args.extend_from_slice(policy);
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

    /// cosign 2.5 `verify-blob-attestation` of manifest.json with `policy`.
    fn cosign(&self, stack: &Stack, bundle: &str, policy: &[&str]) -> Output {
        output(
            Command::new("cosign")
                .env("HOME", self.dir.path())
                .arg("verify-blob-attestation")
                .args(policy)
                .args(["--type", PREDICATE_TYPE, "--bundle", &self.arg(bundle)])
                .args(["--trusted-root", &stack.trusted_root()])
                .arg(self.arg("manifest.json")),
        )
    }

    /// sigstore-js (`@sigstore/verify`) with `policy`.
    fn sigstore_js(&self, stack: &Stack, bundle: &str, policy: &[&str]) -> Output {
        output(
            Command::new("timeout")
                .args(["60", "node"])
                .arg(mock_dir().join("verify.js"))
                .args([
                    "--bundle",
                    &self.arg(bundle),
                    "--trusted-root",
                    &stack.trusted_root(),
                ])
                .args(policy),
        )
    }
}

/// Runs `cmd` to completion whatever its exit status.
fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// All three verifiers accept `bundle` under the exact identity policy.
fn all_accept_identity(w: &Work, s: &Stack, bundle: &str) {
    let (ok, report) = w.verify(s, bundle, &id_policy(IDENTITY, ISSUER));
    assert!(ok, "nodeimg verify rejected {bundle}: {report:#}");
    let c = w.cosign(s, bundle, &cosign_id(IDENTITY, ISSUER));
    assert!(c.status.success(), "cosign rejected {bundle}: {}", text(&c));
    let j = w.sigstore_js(s, bundle, &js_id(IDENTITY, ISSUER));
    assert!(
        j.status.success(),
        "sigstore-js rejected {bundle}: {}",
        text(&j)
    );
}

/// All three verifiers reject `bundle` under (identity, issuer); nodeimg's report names
/// `why` in its failed check.
fn all_reject(w: &Work, s: &Stack, bundle: &str, identity: &str, issuer: &str, why: &str) {
    let (ok, report) = w.verify(s, bundle, &id_policy(identity, issuer));
    assert!(
        !ok,
        "nodeimg verify accepted {bundle} for {identity}/{issuer}: {report:#}"
    );
    let failed = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "failed")
        .unwrap_or_else(|| panic!("no failed check: {report:#}"));
    let detail = failed["detail"].as_str().unwrap().to_lowercase();
    assert!(
        detail.contains(why),
        "nodeimg's failure for {bundle} does not say {why:?}: {failed:#}"
    );
    let c = w.cosign(s, bundle, &cosign_id(identity, issuer));
    assert!(
        !c.status.success(),
        "cosign accepted {bundle}: {}",
        text(&c)
    );
    let j = w.sigstore_js(s, bundle, &js_id(identity, issuer));
    assert!(
        !j.status.success(),
        "sigstore-js accepted {bundle}: {}",
        text(&j)
    );
}

fn id_policy<'a>(identity: &'a str, issuer: &'a str) -> Vec<&'a str> {
    vec![
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        issuer,
    ]
}

fn cosign_id<'a>(identity: &'a str, issuer: &'a str) -> Vec<&'a str> {
    id_policy(identity, issuer)
}

fn js_id<'a>(identity: &'a str, issuer: &'a str) -> Vec<&'a str> {
    vec!["--identity", identity, "--issuer", issuer]
}

/// Edits the bundle JSON `from` into `to`.
fn tamper(w: &Work, from: &str, to: &str, edit: impl FnOnce(&mut Value)) {
    let mut b = w.read_json(from);
    edit(&mut b);
    w.write(to, &serde_json::to_vec_pretty(&b).unwrap());
}

#[test]
fn keyless_bundle_is_accepted_by_nodeimg_cosign_and_sigstore_js() {
    let Some(stack) = Stack::start(0) else { return };
    if !have_tool("cosign") {
        return;
    }
    let w = Work::new();
    let out = w.sign_keyless(&stack, &token(IDENTITY, ISSUER, 600), "b.json", true);
    assert_ok(&out, "nodeimg sign --keyless");
    let said = text(&out);
    assert!(
        said.contains(IDENTITY) && said.contains(ISSUER) && said.contains("verified against"),
        "{said}"
    );

    // The shape every Sigstore client writes: v0.3, one certificate, one intoto 0.0.2 entry
    // with an inclusion proof and SET, one RFC 3161 timestamp, the DSSE statement.
    let b = w.read_json("b.json");
    assert_eq!(
        b["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let vm = &b["verificationMaterial"];
    assert!(vm["certificate"]["rawBytes"].is_string(), "{b:#}");
    let entry = &vm["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["kind"], "intoto");
    assert_eq!(entry["kindVersion"]["version"], "0.0.2");
    assert!(entry["inclusionProof"]["checkpoint"]["envelope"].is_string());
    assert!(entry["inclusionPromise"]["signedEntryTimestamp"].is_string());
    assert_eq!(
        vm["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        b["dsseEnvelope"]["payloadType"],
        "application/vnd.in-toto+json"
    );

    all_accept_identity(&w, &stack, "b.json");

    // The same services named by the stack's Sigstore SigningConfig instead of URLs (its TSA
    // included).
    let t = w.write("token2", token(IDENTITY, ISSUER, 600).as_bytes());
    let (m, sc) = (
        w.arg("manifest.json"),
        format!("{}/signing_config.json", stack.dir.path().display()),
    );
    let tr = stack.trusted_root();
    let c = w.arg("c.json");
    let out = run_nodeimg(&[
        "sign",
        &m,
        "--keyless",
        "--identity-token-file",
        &t,
        "--signing-config",
        &sc,
        "--trusted-root",
        &tr,
        "-o",
        &c,
    ]);
    assert_ok(&out, "sign --keyless --signing-config");
    let cb = w.read_json("c.json");
    assert_eq!(
        cb["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "the signing config's TSA was used"
    );
    all_accept_identity(&w, &stack, "c.json");

    // --certificate-identity-regexp: anchored at both ends.
    let regexp = |re: &str| {
        vec![
            "--certificate-identity-regexp".to_string(),
            re.to_string(),
            "--certificate-oidc-issuer".into(),
            ISSUER.into(),
        ]
    };
    let ok_re = regexp(r"https://github\.com/acme/.*@refs/heads/main");
    let (ok, report) = w.verify(
        &stack,
        "b.json",
        &ok_re.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(ok, "{report:#}");
    let part = regexp(r"github\.com/acme/");
    let (ok, report) = w.verify(
        &stack,
        "b.json",
        &part.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        !ok,
        "a pattern matching only part of the identity was accepted: {report:#}"
    );
    assert!(report.to_string().contains("does not match"), "{report:#}");

    // The same manifest verified as a file by `verify-bundle` (sha256: subject too).
    let m = w.arg("manifest.json");
    let out = run_nodeimg(&[
        "verify-bundle",
        &m,
        "--bundle",
        &w.arg("b.json"),
        "--trusted-root",
        &stack.trusted_root(),
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
        "--offline",
    ]);
    assert_ok(&out, "nodeimg verify-bundle --offline");
}

#[test]
fn wrong_policy_and_tampered_log_entries_are_rejected_everywhere() {
    let Some(stack) = Stack::start(0) else { return };
    if !have_tool("cosign") {
        return;
    }
    let w = Work::new();
    let tok = token(IDENTITY, ISSUER, 600);
    assert_ok(&w.sign_keyless(&stack, &tok, "a.json", false), "sign a");
    assert_ok(&w.sign_keyless(&stack, &tok, "b.json", false), "sign b");
    all_accept_identity(&w, &stack, "a.json");

    let other = "https://github.com/evil/node-images/.github/workflows/release.yml@refs/heads/main";
    all_reject(&w, &stack, "a.json", other, ISSUER, "identity");
    all_reject(
        &w,
        &stack,
        "a.json",
        IDENTITY,
        "https://accounts.google.com",
        "issuer",
    );

    // The logged body says another payload was signed: SET and inclusion proof no longer
    // cover it, and it no longer matches the envelope.
    tamper(&w, "a.json", "body.json", |b| {
        let e = &mut b["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"];
        let mut v: Value =
            serde_json::from_slice(&B64.decode(e.as_str().unwrap()).unwrap()).unwrap();
        v["spec"]["content"]["payloadHash"]["value"] = Value::String("00".repeat(32));
        *e = Value::String(B64.encode(serde_json::to_vec(&v).unwrap()));
    });
    all_reject(
        &w,
        &stack,
        "body.json",
        IDENTITY,
        ISSUER,
        "inclusion promise",
    );

    // Another entry's inclusion proof (a valid proof, for the other bundle's leaf).
    let b = w.read_json("b.json");
    let proof = b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"].clone();
    tamper(&w, "a.json", "proof.json", |a| {
        a["verificationMaterial"]["tlogEntries"][0]["inclusionProof"] = proof;
    });
    all_reject(
        &w,
        &stack,
        "proof.json",
        IDENTITY,
        ISSUER,
        "root hash mismatch",
    );

    // No log entry at all: keyless policy requires one.
    tamper(&w, "a.json", "nolog.json", |a| {
        a["verificationMaterial"]["tlogEntries"] = Value::Array(vec![]);
    });
    all_reject(
        &w,
        &stack,
        "nolog.json",
        IDENTITY,
        ISSUER,
        "inclusion proof",
    );
}

#[test]
fn an_expired_certificate_is_rejected_when_signing_and_by_every_verifier() {
    // The CA's clock is an hour behind: its certificate expired 50 minutes before Rekor
    // logged the signature.
    let Some(stack) = Stack::start(-3600) else {
        return;
    };
    if !have_tool("cosign") {
        return;
    }
    let w = Work::new();
    let out = w.sign_keyless(&stack, &token(IDENTITY, ISSUER, 600), "x.json", false);
    assert!(
        !out.status.success(),
        "signing with an expired certificate succeeded"
    );
    let said = text(&out);
    assert!(said.contains("does not verify against"), "{said}");
    assert!(
        !w.dir.path().join("x.json").exists(),
        "a bundle that does not verify was written"
    );

    // Without the trusted root nodeimg cannot check and writes it (with a warning); every
    // verifier then rejects it.
    let t = w.write("token", token(IDENTITY, ISSUER, 600).as_bytes());
    let (m, b) = (w.arg("manifest.json"), w.arg("x.json"));
    let out = run_nodeimg(&[
        "sign",
        &m,
        "--keyless",
        "--identity-token-file",
        &t,
        "-o",
        &b,
        "--fulcio-url",
        &stack.url,
        "--rekor-url",
        &stack.url,
    ]);
    assert_ok(&out, "sign without a trusted root");
    assert!(text(&out).contains("NOT verified"), "{}", text(&out));
    all_reject(&w, &stack, "x.json", IDENTITY, ISSUER, "expired");
}

#[test]
fn managed_key_signatures_published_to_rekor_verify_with_the_key() {
    let Some(stack) = Stack::start(0) else { return };
    if !have_tool("cosign") {
        return;
    }
    let w = Work::new();
    let key = w.arg("k");
    assert_ok(
        &run_nodeimg(&["keygen", "-o", &key, "--algorithm", "ecdsa-p256"]),
        "keygen",
    );
    let (m, b) = (w.arg("manifest.json"), w.arg("k.json"));
    let mut args = vec!["sign", &m, "--key", &key, "--tlog-upload", "-o", &b];
    let flags = stack.sign_flags(false);
    args.extend(flags.iter().map(String::as_str));
    assert_ok(&run_nodeimg(&args), "sign --tlog-upload");
    let bundle = w.read_json("k.json");
    let vm = &bundle["verificationMaterial"];
    assert!(vm["publicKey"]["hint"].is_string(), "{bundle:#}");
    assert_eq!(vm["tlogEntries"][0]["kindVersion"]["kind"], "intoto");

    let public = format!("{key}.pub");
    let (ok, report) = w.verify(&stack, "k.json", &["--key", &public]);
    assert!(ok, "{report:#}");
    assert!(
        report.to_string().contains("tlog entry verified"),
        "{report:#}"
    );
    let (ok, report) = w.verify(&stack, "k.json", &["--key", &public, "--require-tlog"]);
    assert!(ok, "{report:#}");
    // The same key's offline bundle: fine with the key alone, refused under --require-tlog.
    let off = w.arg("offline.json");
    assert_ok(
        &run_nodeimg(&["sign", &m, "--key", &key, "-o", &off]),
        "sign offline",
    );
    let (ok, report) = w.verify(&stack, "offline.json", &["--key", &public]);
    assert!(ok, "{report:#}");
    let (ok, report) = w.verify(
        &stack,
        "offline.json",
        &["--key", &public, "--require-tlog"],
    );
    assert!(
        !ok,
        "--require-tlog accepted a bundle without a log entry: {report:#}"
    );
    // cosign without --insecure-ignore-tlog: the entry is checked.
    let c = w.cosign(&stack, "k.json", &["--key", &public]);
    assert!(c.status.success(), "cosign: {}", text(&c));
    let j = w.sigstore_js(&stack, "k.json", &["--key", &public]);
    assert!(j.status.success(), "sigstore-js: {}", text(&j));

    // Another key's entry under this key's bundle: the logged verifier is not the signer.
    let key2 = w.arg("k2");
    assert_ok(
        &run_nodeimg(&["keygen", "-o", &key2, "--algorithm", "ecdsa-p256"]),
        "keygen 2",
    );
    let b2 = w.arg("k2.json");
    let mut args = vec!["sign", &m, "--key", &key2, "--tlog-upload", "-o", &b2];
    args.extend(flags.iter().map(String::as_str));
    assert_ok(&run_nodeimg(&args), "sign with key 2");
    let other_entry = w.read_json("k2.json")["verificationMaterial"]["tlogEntries"].clone();
    tamper(&w, "k.json", "swapped.json", |b| {
        b["verificationMaterial"]["tlogEntries"] = other_entry;
    });
    let (ok, report) = w.verify(&stack, "swapped.json", &["--key", &public]);
    assert!(!ok, "{report:#}");
    let c = w.cosign(&stack, "swapped.json", &["--key", &public]);
    assert!(
        !c.status.success(),
        "cosign accepted another key's log entry"
    );
    let j = w.sigstore_js(&stack, "swapped.json", &["--key", &public]);
    assert!(
        !j.status.success(),
        "sigstore-js accepted another key's log entry"
    );
}

#[test]
fn signing_errors_name_the_cause_and_write_nothing() {
    let w = Work::new();
    let m = w.arg("manifest.json");
    let out_path = w.arg("never.json");
    // A bad token is refused before any network call (the URLs lead nowhere).
    let dead = "http://127.0.0.1:9";
    let keyless_with = |name: &str, token_text: &[u8], want: &str| {
        let t = w.write(name, token_text);
        let out = run_nodeimg(&[
            "sign",
            &m,
            "--keyless",
            "--identity-token-file",
            &t,
            "--fulcio-url",
            dead,
            "--rekor-url",
            dead,
            "-o",
            &out_path,
        ]);
        assert!(!out.status.success(), "{name}");
        assert!(text(&out).contains(want), "{name}: {}", text(&out));
    };
    keyless_with("token", token(IDENTITY, ISSUER, -60).as_bytes(), "expired");
    keyless_with("garbage", b"not a jwt", "not an OIDC identity token");

    // No token anywhere (no CI credentials in the environment).
    let out = output(
        Command::new(nodeimg())
            .args([
                "sign",
                &m,
                "--keyless",
                "--fulcio-url",
                dead,
                "--rekor-url",
                dead,
                "-o",
            ])
            .arg(&out_path)
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            .env_remove("GITLAB_CI")
            .env_remove("BUILDKITE")
            .env_remove("CIRCLECI"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--identity-token-file"),
        "{}",
        text(&out)
    );

    // Rekor unreachable: the error names it.
    let key = w.arg("k");
    assert_ok(
        &run_nodeimg(&["keygen", "-o", &key, "--algorithm", "ecdsa-p256"]),
        "keygen",
    );
    let out = run_nodeimg(&[
        "sign",
        &m,
        "--key",
        &key,
        "--tlog-upload",
        "--rekor-url",
        dead,
        "-o",
        &out_path,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Rekor at http://127.0.0.1:9"),
        "{}",
        text(&out)
    );
    assert!(
        !Path::new(&out_path).exists(),
        "a failed signing wrote {out_path}"
    );

    // A URL that is not one.
    let out = run_nodeimg(&[
        "sign",
        &m,
        "--key",
        &key,
        "--tlog-upload",
        "--rekor-url",
        "ftp://x",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not an http(s) URL"), "{}", text(&out));
}

#[test]
fn fixture_build_signs_keyless_from_the_config() {
    let Some(tar) = fixture_tar() else { return };
    let Some(stack) = Stack::start(0) else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), token(IDENTITY, ISSUER, 900)).unwrap();
    let cfg = fixture_config(
        dir.path(),
        &tar,
        &format!(
            "[signing]\nkeyless = true\nidentity-token-file = \"token\"\nfulcio-url = \"{u}\"\n\
             rekor-url = \"{u}\"\ntrusted-root = \"{tr}\"\n",
            u = stack.url,
            tr = stack.trusted_root()
        ),
    );
    let out = dir.path().join("out");
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        "nodeimg build with [signing] keyless",
    );
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("manifest.sigstore.json"), "{sums}");
    let m = out.join("manifest.json");
    let report = run_nodeimg(&[
        "verify",
        m.to_str().unwrap(),
        "--image",
        out.join("disk.raw").to_str().unwrap(),
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        ISSUER,
        "--trusted-root",
        &stack.trusted_root(),
    ]);
    assert_ok(&report, "nodeimg verify of a keyless build");
}
