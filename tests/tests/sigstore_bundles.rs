//! Tier 2, Sigstore bundles nobody here made: the public-good and staging bundles that
//! Sigstore's Rust verifier ships as test data (in the `sigstore-verify` crate, so present
//! offline wherever the workspace builds), run through `scripts/sigstore-conformance-client`
//! (the sigstore-conformance suite's CLI protocol) over `nodeimg verify-bundle`. Happy cases
//! verify with their identity or key (artifact file and `sha256:` digest); wrong identities,
//! issuers and keys, a tampered artifact, tlog body and inclusion proof, a missing tlog entry
//! and the suite's own `_fail` cases are rejected.

use std::path::{Path, PathBuf};
use std::process::Command;

use nodeimg_tests::*;

/// The `test_data` directory of the `sigstore-verify` crate the workspace builds with.
fn sigstore_test_data() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(repo().join("Cargo.toml"))
        .output()
        .unwrap();
    assert_ok(&out, "cargo metadata");
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pkg = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sigstore-verify")
        .expect("sigstore-verify is a dependency");
    let manifest = PathBuf::from(pkg["manifest_path"].as_str().unwrap());
    manifest.parent().unwrap().join("test_data")
}

/// Runs the conformance client; true when it verified.
fn client(args: &[&str]) -> (bool, String) {
    let out = Command::new(repo().join("scripts/sigstore-conformance-client"))
        .arg("verify-bundle")
        .args(args)
        .env("NODEIMG", nodeimg())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
    )
}

const GITHUB: &str = "https://github.com/login/oauth";
const ACTIONS: &str = "https://token.actions.githubusercontent.com";

#[test]
fn real_sigstore_bundles_verify_and_tampered_ones_fail() {
    let d = sigstore_test_data();
    let p = |rel: &str| d.join(rel).to_str().unwrap().to_string();
    let scratch = tempfile::tempdir().unwrap();
    let s = |name: &str| scratch.path().join(name).to_str().unwrap().to_string();

    // (bundle, artifact or digest, policy args, extra args, must verify, what)
    let artifact_blob = p("bundles/cosign-v3-blob.txt");
    let managed = p("managed-key/artifact.txt");
    let managed_digest = sha256_of(&d.join("managed-key/artifact.txt"));
    let staging_txt = p("upstream/sigstore-python/staging-rekor-v2.txt");
    let good: Vec<(String, String, Vec<String>, &str)> = vec![
        (p("managed-key/bundle.sigstore.json"), managed.clone(), vec!["--key".into(), p("managed-key/key.pub")], "managed key + Rekor v1 entry, public good"),
        (p("managed-key/bundle.sigstore.json"), managed_digest.clone(), vec!["--key".into(), p("managed-key/key.pub")], "the same by sha256: digest"),
        (p("bundles/cosign-v3-blob.sigstore.json"), artifact_blob.clone(), vec!["--certificate-identity".into(), "w.vollprecht@gmail.com".into(), "--certificate-oidc-issuer".into(), GITHUB.into()], "keyless (cosign 3), public good"),
        (p("bundles/bundle_v3_github.whl.sigstore"), "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201".into(), vec!["--certificate-identity".into(), "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2".into(), "--certificate-oidc-issuer".into(), ACTIONS.into()], "keyless GitHub Actions (bundle v0.2), by digest"),
        (p("upstream/sigstore-python/staging-rekor-v2.txt.sigstore.json"), staging_txt.clone(), vec!["--staging".into(), "--certificate-identity".into(), "jku@goto.fi".into(), "--certificate-oidc-issuer".into(), GITHUB.into()], "keyless, Rekor v2 + RFC 3161, staging"),
        (p("sct-multi-intermediate/staging_bundle.sigstore.json"), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(), vec!["--certificate-identity".into(), "https://github.com/sigstore/root-signing-staging/.github/workflows/custom-test.yml@refs/heads/main".into(), "--certificate-oidc-issuer".into(), ACTIONS.into(), "--trusted-root".into(), p("sct-multi-intermediate/staging_trusted_root.json")], "keyless, SCT via two intermediates, custom trusted root"),
    ];
    for (bundle, input, policy, what) in &good {
        let mut args: Vec<&str> = policy.iter().map(String::as_str).collect();
        args.splice(0..0, ["--bundle", bundle.as_str()]);
        args.push(input);
        let (ok, out) = client(&args);
        assert!(ok, "{what} did not verify: {out}");
    }

    // Tampered copies of the managed-key bundle.
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("managed-key/bundle.sigstore.json")).unwrap())
            .unwrap();
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(s(name), serde_json::to_vec(v).unwrap()).unwrap();
        s(name)
    };
    let mut body = bundle.clone();
    {
        let entry = &mut body["verificationMaterial"]["tlogEntries"][0];
        let b = entry["canonicalizedBody"].as_str().unwrap().to_string();
        let mut raw = base64_decode(&b);
        let at = raw.len() / 2;
        raw[at] ^= 1;
        entry["canonicalizedBody"] = base64_encode(&raw).into();
    }
    let mut proof = bundle.clone();
    {
        let hashes = proof["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"]
            .as_array_mut()
            .unwrap();
        assert!(hashes.len() >= 2, "the fixture's proof has several hashes");
        hashes.swap(0, 1);
    }
    let mut no_tlog = bundle.clone();
    no_tlog["verificationMaterial"]
        .as_object_mut()
        .unwrap()
        .remove("tlogEntries");
    let tampered_artifact = s("artifact.txt");
    let mut bytes = std::fs::read(d.join("managed-key/artifact.txt")).unwrap();
    bytes.push(b'!');
    std::fs::write(&tampered_artifact, &bytes).unwrap();
    // Another key.
    let other_key = s("other.pub");
    let o = run_nodeimg(&["keygen", "-o", &s("other"), "--algorithm", "ecdsa-p256"]);
    assert_ok(&o, "keygen");
    let key = p("managed-key/key.pub");
    let mk = p("managed-key/bundle.sigstore.json");
    let bad: Vec<(Vec<String>, &str)> = vec![
        (vec!["--bundle".into(), write("body.json", &body), "--key".into(), key.clone(), managed.clone()], "a tampered tlog body"),
        (vec!["--bundle".into(), write("proof.json", &proof), "--key".into(), key.clone(), managed.clone()], "a swapped inclusion proof"),
        (vec!["--bundle".into(), write("notlog.json", &no_tlog), "--key".into(), key.clone(), managed.clone()], "a managed-key bundle without a tlog entry"),
        (vec!["--bundle".into(), mk.clone(), "--key".into(), key.clone(), tampered_artifact.clone()], "a tampered artifact"),
        (vec!["--bundle".into(), mk.clone(), "--key".into(), other_key, managed.clone()], "another key"),
        (vec!["--bundle".into(), p("bundles/cosign-v3-blob.sigstore.json"), "--certificate-identity".into(), "someone@example.com".into(), "--certificate-oidc-issuer".into(), GITHUB.into(), artifact_blob.clone()], "a wrong identity"),
        (vec!["--bundle".into(), p("bundles/cosign-v3-blob.sigstore.json"), "--certificate-identity".into(), "w.vollprecht@gmail.com".into(), "--certificate-oidc-issuer".into(), "https://accounts.google.com".into(), artifact_blob.clone()], "a wrong issuer"),
        (vec!["--bundle".into(), p("upstream/sigstore-python/staging-rekor-v2.txt.sigstore.json"), "--certificate-identity".into(), "jku@goto.fi".into(), "--certificate-oidc-issuer".into(), GITHUB.into(), staging_txt.clone()], "a staging bundle against the public-good root"),
        (vec!["--bundle".into(), p("invalid-ct-key_fail/bundle.sigstore.json"), "--certificate-identity".into(), "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main".into(), "--certificate-oidc-issuer".into(), ACTIONS.into(), "--trusted-root".into(), p("invalid-ct-key_fail/trusted_root.json"), "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf".into()], "the conformance suite's invalid-ct-key_fail"),
        (vec!["--bundle".into(), p("bundles/bundle_cve_2022_36056.txt.sigstore"), "--certificate-identity".into(), "william@yossarian.net".into(), "--certificate-oidc-issuer".into(), GITHUB.into(), "sha256:c87b5b213ab08b32970c106d0c7e4423e67f5449c2fd2d1e9b4ea6cc43b6ee7c".into()], "a CVE-2022-36056 bundle (log entry for another artifact)"),
    ];
    for (args, what) in &bad {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = client(&a);
        assert!(!ok, "{what} verified: {out}");
        assert!(
            out.contains("does not verify"),
            "{what}: no clear error: {out}"
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `nodeimg verify` hands bundles with Sigstore material (certificate, tlog entry) to the
/// Sigstore verifier and still requires them to sign this manifest: real bundles over other
/// artifacts fail the signature check, naming why.
#[test]
fn verify_sends_sigstore_material_through_sigstore_and_binds_it_to_the_manifest() {
    let d = sigstore_test_data();
    let scratch = tempfile::tempdir().unwrap();
    let manifest = scratch.path().join("manifest.json");
    std::fs::write(
        &manifest,
        br#"{"schema":"nodeimg.manifest/v1","artifacts":{}}"#,
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let report = |args: &[&str]| -> (bool, serde_json::Value) {
        let mut all = vec!["--json", "verify", m];
        all.extend_from_slice(args);
        let o = run_nodeimg(&all);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        (o.status.success(), v)
    };
    let signature = |v: &serde_json::Value| -> (String, String) {
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "signature")
            .unwrap_or_else(|| panic!("no signature check: {v:#}"));
        (
            c["status"].as_str().unwrap().into(),
            c["detail"].as_str().unwrap().into(),
        )
    };
    let key_bundle = d.join("managed-key/bundle.sigstore.json");
    let key = d.join("managed-key/key.pub");
    let (ok, v) = report(&[
        "--bundle",
        key_bundle.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(!ok);
    let (status, detail) = signature(&v);
    assert_eq!(status, "failed", "{v:#}");
    assert!(detail.contains("allow-message-signature"), "{detail}");
    let (ok, v) = report(&[
        "--bundle",
        key_bundle.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--allow-message-signature",
    ]);
    assert!(!ok);
    let (status, detail) = signature(&v);
    assert_eq!(status, "failed", "{v:#}");
    assert!(!detail.is_empty());
    let keyless = d.join("bundles/dsse.sigstore.json");
    let (ok, v) = report(&[
        "--bundle",
        keyless.to_str().unwrap(),
        "--certificate-identity",
        "brian@dehamer.com",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    ]);
    assert!(!ok, "{v:#}");
    assert_eq!(signature(&v).0, "failed", "{v:#}");
    assert_eq!(v["identity"]["identity"], "brian@dehamer.com");
}
