//! Tier 2, keys in a PKCS#11 token (SoftHSM2, a real PKCS#11 module): keys made inside the
//! token by `nodeimg keygen -o pkcs11:…`, a build signing its manifest with a token key (cosign
//! and `nodeimg verify` accept the bundle with the exported public key), a Secure Boot db key
//! in the token signing the UKI (sbverify accepts it, builds reproduce), and clear errors for a
//! wrong PIN, a missing key or module, with nothing written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nodeimg_tests::*;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PREDICATE_TYPE: &str = "https://nodeimg.dev/measurements/v1";

/// A SoftHSM2 token in a temporary directory.
struct Token {
    dir: tempfile::TempDir,
}

impl Token {
    fn new() -> Option<Token> {
        if !have_tool("softhsm2-util") || !have_file(Path::new(MODULE), "apt-get install softhsm2")
        {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("pin"), "1234\n").unwrap();
        let t = Token { dir };
        let out = t
            .cmd("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "ci-token",
                "--pin",
                "1234",
                "--so-pin",
                "5678",
            ])
            .output()
            .unwrap();
        assert_ok(&out, "softhsm2-util --init-token");
        Some(t)
    }

    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    /// A URI for key `object`, PIN from a file.
    fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token=ci-token;object={object}?module-path={MODULE}&pin-source={}",
            self.path("pin").display()
        )
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SOFTHSM2_CONF", self.path("softhsm2.conf"))
            .env("HOME", self.dir.path())
            .env_remove("NODEIMG_INIT");
        c
    }

    fn nodeimg(&self, args: &[&str]) -> Output {
        self.cmd(nodeimg().to_str().unwrap())
            .args(args)
            .output()
            .unwrap()
    }

    fn nodeimg_ok(&self, args: &[&str]) -> Output {
        let out = self.nodeimg(args);
        assert_ok(&out, &format!("nodeimg {}", args.join(" ")));
        out
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_token_key_signs_the_manifest_and_cosign_verifies_it() {
    let Some(t) = Token::new() else { return };
    let Some(tar) = fixture_tar() else { return };
    let uri = t.uri("manifest");
    let public = t.path("manifest.pub");
    t.nodeimg_ok(&[
        "keygen",
        "-o",
        &uri,
        "--public-key",
        public.to_str().unwrap(),
    ]);
    // A second key under the same label is refused.
    let again = t.nodeimg(&[
        "keygen",
        "-o",
        &uri,
        "--public-key",
        t.path("x.pub").to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds a key"),
        "{}",
        stderr(&again)
    );
    assert!(!t.path("x.pub").exists());

    let cfg = fixture_config(
        t.dir.path(),
        &tar,
        &format!("\n[signing]\nkey = \"{uri}\"\n"),
    );
    let out = t.path("out");
    t.nodeimg_ok(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let (m, b) = (
        out.join("manifest.json"),
        out.join("manifest.sigstore.json"),
    );
    let v = t.nodeimg_ok(&[
        "verify",
        m.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
        "--image",
        out.join("disk.raw").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&v.stdout).contains("verified:"));
    // `sign` with the token key directly, too.
    let b2 = t.path("again.sigstore.json");
    t.nodeimg_ok(&[
        "sign",
        m.to_str().unwrap(),
        "--key",
        &uri,
        "-o",
        b2.to_str().unwrap(),
    ]);
    t.nodeimg_ok(&[
        "verify",
        m.to_str().unwrap(),
        "--bundle",
        b2.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    // The signature is low-S DER ECDSA (strict verifiers need that).
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&b).unwrap()).unwrap();
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(
            bundle["dsseEnvelope"]["signatures"][0]["sig"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(sig[0], 0x30, "not DER");
    if have_tool("cosign") {
        let tr = t.path("trusted_root.json");
        std::fs::write(
            &tr,
            r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
        )
        .unwrap();
        let c = t
            .cmd("cosign")
            .args(["verify-blob-attestation", "--key"])
            .arg(&public)
            .args([
                "--insecure-ignore-tlog",
                "--type",
                PREDICATE_TYPE,
                "--bundle",
            ])
            .arg(&b)
            .arg("--trusted-root")
            .arg(&tr)
            .arg(out.join("disk.raw"))
            .output()
            .unwrap();
        assert_ok(
            &c,
            "cosign verify-blob-attestation of a token-signed bundle",
        );
    }
}

#[test]
fn token_errors_are_clear_and_write_nothing() {
    let Some(t) = Token::new() else { return };
    let uri = t.uri("k");
    t.nodeimg_ok(&[
        "keygen",
        "-o",
        &uri,
        "--public-key",
        t.path("k.pub").to_str().unwrap(),
    ]);
    let manifest = t.path("manifest.json");
    std::fs::write(
        &manifest,
        br#"{"schema":"nodeimg.manifest/v1","artifacts":{}}"#,
    )
    .unwrap();
    let target = t.path("never.json");
    let sign = |key: &str| {
        t.nodeimg(&[
            "sign",
            manifest.to_str().unwrap(),
            "--key",
            key,
            "-o",
            target.to_str().unwrap(),
        ])
    };
    let wrong_pin = format!("pkcs11:token=ci-token;object=k?module-path={MODULE}&pin-value=0000");
    let missing = t.uri("nothere");
    let no_module = "pkcs11:token=ci-token;object=k?pin-value=1234".to_string();
    let no_token = format!("pkcs11:token=other;object=k?module-path={MODULE}&pin-value=1234");
    for (key, want) in [
        (wrong_pin.as_str(), "wrong PIN"),
        (missing.as_str(), "no private key with that label"),
        (no_module.as_str(), "no PKCS#11 module"),
        (no_token.as_str(), "no such token"),
    ] {
        let o = sign(key);
        assert!(!o.status.success(), "{key} signed");
        let e = stderr(&o);
        assert!(e.contains(want), "{key}: {e}");
        assert!(!e.contains("1234"), "the PIN leaked into an error: {e}");
        assert!(!target.exists());
    }
    // An RSA token key cannot sign manifests (only Ed25519 / P-256 keys can).
    let rsa = t.uri("rsa");
    t.nodeimg_ok(&[
        "keygen",
        "-o",
        &rsa,
        "--algorithm",
        "rsa-2048",
        "--public-key",
        t.path("rsa.pub").to_str().unwrap(),
    ]);
    let o = sign(&rsa);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Ed25519 or ECDSA P-256"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_token_db_key_signs_the_uki_for_secure_boot() {
    let Some(t) = Token::new() else { return };
    let Some(tar) = fixture_tar() else { return };
    if !have_tool("sbverify") {
        return;
    }
    let uri = t.uri("db");
    t.nodeimg_ok(&[
        "keygen",
        "-o",
        &uri,
        "--algorithm",
        "rsa-2048",
        "--public-key",
        t.path("db.pub").to_str().unwrap(),
    ]);
    let keys = t.path("keys");
    t.nodeimg_ok(&[
        "keygen",
        "--secure-boot",
        keys.to_str().unwrap(),
        "--db-key",
        &uri,
    ]);
    assert!(keys.join("db.crt").is_file());
    assert!(
        !keys.join("db.key").exists(),
        "the token's db key must not be written out"
    );
    let cfg = fixture_config(
        t.dir.path(),
        &tar,
        &format!(
            "\n[secure-boot]\nkeys = \"{}\"\nkey = \"{uri}\"\n",
            keys.display()
        ),
    );
    let (a, b) = (t.path("a"), t.path("b"));
    for out in [&a, &b] {
        t.nodeimg_ok(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    }
    let uki = a.join("uki.efi");
    assert!(
        std::fs::read(&uki).unwrap() == std::fs::read(b.join("uki.efi")).unwrap(),
        "two builds signed by the token differ"
    );
    let v = Command::new("sbverify")
        .arg("--cert")
        .arg(keys.join("db.crt"))
        .arg(&uki)
        .output()
        .unwrap();
    assert_ok(&v, "sbverify of the token-signed UKI");
    let m = manifest(&a);
    // `measure disk`: the manifest's PCRs include PCR 5 (the disk's GPT).
    let j = t.nodeimg_ok(&[
        "measure",
        "disk",
        a.join("disk.raw").to_str().unwrap(),
        "--secure-boot",
        keys.to_str().unwrap(),
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(j["pcrs"], m["pcrs"]);
}

/// An SEV-SNP ID key made in the token (`keygen --algorithm ecdsa-p384`) signs ID blocks
/// (`measure snp --id-key pkcs11:…`, CKM_ECDSA over SHA-384); `nodeimg verify` accepts the pair
/// with the exported public key pinned. A P-256 token key is refused as an ID key.
#[test]
fn a_token_p384_key_signs_snp_id_blocks() {
    let Some(t) = Token::new() else { return };
    let uri = t.uri("sev-id");
    let public = t.path("sev-id.pub");
    t.nodeimg_ok(&[
        "keygen",
        "-o",
        &uri,
        "--algorithm",
        "ecdsa-p384",
        "--public-key",
        public.to_str().unwrap(),
    ]);
    let cvm = repo().join("measurements/tests/data/cvm");
    let ovmf = cvm.join("ovmf_AmdSev_suffix.bin");
    let author = cvm.join("authorkey.pem");
    let measure = |key: &str| {
        t.nodeimg(&[
            "--json",
            "measure",
            "snp",
            "--ovmf",
            ovmf.to_str().unwrap(),
            "--vcpus",
            "2",
            "--vcpu-type",
            "EPYC-Genoa",
            "--id-key",
            key,
            "--author-key",
            author.to_str().unwrap(),
        ])
    };
    let out = measure(&uri);
    assert_ok(&out, "measure snp --id-key pkcs11:");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A signed manifest with this entry, and the pair as files.
    let m = t.path("manifest.json");
    let entry = serde_json::json!({
        "vcpus": 2, "vcpu_type": "EPYC-Genoa", "vcpu_sig": v["vcpu_sig"], "vmm_type": "QEMU",
        "guest_features": "0x1", "ovmf_sha256": v["ovmf_sha256"], "measurement": v["measurement"],
        "policy": v["policy"], "id_block": v["id_block"],
    });
    let doc = serde_json::json!({"schema": "nodeimg.manifest/v1", "artifacts": {}, "snp": [entry]});
    std::fs::write(&m, serde_json::to_vec(&doc).unwrap()).unwrap();
    let key = t.path("manifest.key");
    t.nodeimg_ok(&["keygen", "-o", key.to_str().unwrap()]);
    t.nodeimg_ok(&["sign", m.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    let (bf, af) = (t.path("block"), t.path("auth"));
    std::fs::write(&bf, v["id_block"]["block"].as_str().unwrap()).unwrap();
    std::fs::write(&af, v["id_block"]["auth"].as_str().unwrap()).unwrap();
    let pubkey = format!("{}.pub", key.display());
    let verify = t.nodeimg(&[
        "verify",
        m.to_str().unwrap(),
        "--key",
        &pubkey,
        "--snp-id-block",
        bf.to_str().unwrap(),
        "--snp-id-auth",
        af.to_str().unwrap(),
        "--snp-id-key",
        public.to_str().unwrap(),
    ]);
    assert_ok(
        &verify,
        "verify --snp-id-block with the token's public key pinned",
    );
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(text.contains("the ID key is the pinned one"), "{text}");

    // A P-256 token key is not an ID key.
    let p256 = t.uri("manifest-p256");
    t.nodeimg_ok(&[
        "keygen",
        "-o",
        &p256,
        "--public-key",
        t.path("p256.pub").to_str().unwrap(),
    ]);
    let out = measure(&p256);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--id-key") && stderr(&out).contains("must be ECDSA P-384"),
        "{}",
        stderr(&out)
    );
}
