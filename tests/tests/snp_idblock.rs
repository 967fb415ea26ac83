//! SEV-SNP ID blocks against the live oracle, sev-snp-measure 0.0.13's `snp-create-id-block`
//! (and its `id_block` module for the fields its CLI fixes), with the same keys and digest:
//!
//! * the ID block is byte-identical;
//! * the ID auth structure is byte-identical outside the two signatures (ours are RFC 6979
//!   deterministic, theirs use OpenSSL's random nonces), and each side verifies the other's
//!   signatures: theirs through `nodeimg verify --snp-id-block/--snp-id-auth`, ours through
//!   Python `cryptography` (the oracle's own dependency);
//! * `nodeimg verify` refuses a pair for another policy or signed by another key;
//! * two builds with `[measurements.snp] id-key` write byte-identical manifests;
//! * QEMU's `sev-snp-guest` takes the `qemu_args` (property names, policy, a 96-byte ID block).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use nodeimg_tests::*;
use serde_json::Value;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The signature fields of the ID auth structure (ID_BLOCK_SIG, ID_KEY_SIG), 0x200 bytes each.
const SIGS: [std::ops::Range<usize>; 2] = [0x40..0x240, 0x680..0x880];

fn fixture(name: &str) -> PathBuf {
    repo().join("measurements/tests/data/cvm").join(name)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `snp-create-id-block` of sev-snp-measure 0.0.13, or a (loud) skip.
fn oracle() -> bool {
    if !have_tool("snp-create-id-block") || !have_tool("sev-snp-measure") {
        return false;
    }
    let out = Command::new("sev-snp-measure")
        .arg("--version")
        .output()
        .unwrap();
    let v =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        v.contains("0.0.13"),
        "the oracle must be sev-snp-measure 0.0.13, found {v:?}"
    );
    true
}

/// The Python that runs the oracle (its `cryptography` verifies our signatures).
fn python() -> String {
    let shebang =
        std::fs::read_to_string(which("snp-create-id-block").unwrap()).unwrap_or_default();
    match shebang.lines().next().and_then(|l| l.strip_prefix("#!")) {
        Some(interp) if !interp.contains("bash") && !interp.contains("/sh") => {
            interp.trim().to_string()
        }
        _ => "python3".into(),
    }
}

/// A fresh P-384 key (PKCS#8 PEM) from the oracle's own library.
fn fresh_key(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let code = format!(
        "from cryptography.hazmat.primitives.asymmetric import ec\n\
         from cryptography.hazmat.primitives import serialization as s\n\
         k = ec.generate_private_key(ec.SECP384R1())\n\
         open({:?}, 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))\n",
        p(&path)
    );
    let out = Command::new(python()).args(["-c", &code]).output().unwrap();
    assert_ok(&out, "generating a P-384 key with cryptography");
    path
}

fn public_pem(dir: &Path, key: &Path) -> PathBuf {
    let path = dir.join(format!(
        "{}.pub",
        key.file_name().unwrap().to_str().unwrap()
    ));
    let code = format!(
        "from cryptography.hazmat.primitives import serialization as s\n\
         k = s.load_pem_private_key(open({:?}, 'rb').read(), None)\n\
         open({:?}, 'wb').write(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))\n",
        p(key),
        p(&path)
    );
    assert_ok(
        &Command::new(python()).args(["-c", &code]).output().unwrap(),
        "public key",
    );
    path
}

const OVMF_ARGS: [&str; 6] = [
    "--vcpus",
    "4",
    "--vcpu-type",
    "EPYC-Milan",
    "--vmm-type",
    "QEMU",
];

/// `nodeimg --json measure snp` on the AmdSev fixture with `extra`.
fn ours(extra: &[&str]) -> Value {
    let ovmf = fixture("ovmf_AmdSev_suffix.bin");
    let mut args = vec!["--json", "measure", "snp", "--ovmf", p(&ovmf)];
    args.extend_from_slice(&OVMF_ARGS);
    args.extend_from_slice(extra);
    let out = run_nodeimg(&args);
    assert_ok(&out, "nodeimg measure snp --id-key");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (block, auth, id key digest, author key digest) from `snp-create-id-block`'s output.
fn parse_oracle(text: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    let (block, auth) = first.split_once(",id-auth=").unwrap();
    let block = B64
        .decode(block.strip_prefix("id-block=").unwrap())
        .unwrap();
    let auth = B64.decode(auth.trim()).unwrap();
    let id = B64
        .decode(lines.next().unwrap().strip_prefix("id_key_hash: ").unwrap())
        .unwrap();
    let author = B64
        .decode(lines.next().unwrap().strip_prefix("author_key: ").unwrap())
        .unwrap();
    (block, auth, id, author)
}

fn theirs(measurement_hex: &str, id: &Path, author: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let ld = B64.encode(hex::decode(measurement_hex).unwrap());
    let out = Command::new("snp-create-id-block")
        .args([
            "--measurement",
            &ld,
            "--idkey",
            p(id),
            "--authorkey",
            p(author),
        ])
        .output()
        .unwrap();
    assert_ok(&out, "snp-create-id-block");
    parse_oracle(&String::from_utf8_lossy(&out.stdout))
}

/// Verifies our ID auth's signatures with Python `cryptography` (ECDSA P-384, SHA-384).
fn python_verifies(block: &[u8], auth: &[u8], id: &Path, author: &Path) -> Result<(), String> {
    let code = format!(
        "import base64, sys\n\
         from cryptography.hazmat.primitives.asymmetric import ec, utils\n\
         from cryptography.hazmat.primitives import hashes, serialization as s\n\
         block = base64.b64decode({block:?}); auth = base64.b64decode({auth:?})\n\
         def key(p): return s.load_pem_private_key(open(p, 'rb').read(), None).public_key()\n\
         def sig(b): return utils.encode_dss_signature(int.from_bytes(b[:0x48], 'little'), int.from_bytes(b[0x48:0x90], 'little'))\n\
         key({id:?}).verify(sig(auth[0x40:0x240]), block, ec.ECDSA(hashes.SHA384()))\n\
         key({author:?}).verify(sig(auth[0x680:0x880]), auth[0x240:0x644], ec.ECDSA(hashes.SHA384()))\n\
         print('verified')\n",
        block = B64.encode(block),
        auth = B64.encode(auth),
        id = p(id),
        author = p(author),
    );
    let out = Command::new(python()).args(["-c", &code]).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn decode_ours(v: &Value) -> (Vec<u8>, Vec<u8>) {
    let id = &v["id_block"];
    (
        B64.decode(id["block"].as_str().unwrap()).unwrap(),
        B64.decode(id["auth"].as_str().unwrap()).unwrap(),
    )
}

/// Fixture keys (PKCS#8 and SEC1) and fresh ones from the oracle's library.
#[test]
fn id_block_and_id_auth_match_snp_create_id_block() {
    if !oracle() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pairs = [
        (fixture("idkey.pem"), fixture("authorkey.pem")),
        (
            fresh_key(d.path(), "id.pem"),
            fresh_key(d.path(), "author.pem"),
        ),
    ];
    for (id, author) in &pairs {
        let v = ours(&["--id-key", p(id), "--author-key", p(author)]);
        let (block, auth) = decode_ours(&v);
        let (t_block, t_auth, t_id, t_author) =
            theirs(v["measurement"].as_str().unwrap(), id, author);
        assert_eq!(
            block,
            t_block,
            "ID block differs from snp-create-id-block's ({})",
            id.display()
        );
        assert_eq!((auth.len(), t_auth.len()), (0x1000, 0x1000));
        for (i, (a, b)) in auth.iter().zip(&t_auth).enumerate() {
            if !SIGS.iter().any(|r| r.contains(&i)) {
                assert_eq!(a, b, "ID auth byte {i:#x} differs ({})", id.display());
            }
        }
        for r in SIGS {
            // r and s in 72-byte little-endian fields, the rest reserved (zero) on both sides.
            assert!(auth[r.start + 0x90..r.end].iter().all(|&x| x == 0));
            assert!(t_auth[r.start + 0x90..r.end].iter().all(|&x| x == 0));
        }
        let id_block = &v["id_block"];
        assert_eq!(
            id_block["id_key_digest"].as_str().unwrap(),
            hex::encode(&t_id)
        );
        assert_eq!(
            id_block["author_key_digest"].as_str().unwrap(),
            hex::encode(&t_author)
        );
        // Ours verify with their library; theirs with ours (below, through `nodeimg verify`).
        python_verifies(&block, &auth, id, author).unwrap();
        // Deterministic (RFC 6979): the same inputs, the same bytes.
        assert_eq!(
            decode_ours(&ours(&["--id-key", p(id), "--author-key", p(author)])),
            (block, auth)
        );
        // A tampered signature is refused by their library (the check can fail).
        let (block, mut auth) = decode_ours(&v);
        auth[0x40] ^= 1;
        assert!(python_verifies(&block, &auth, id, author).is_err());
        verify_their_pair(d.path(), &v, &t_block, &t_auth, id, author);
    }
}

/// The oracle's `snp_calc_id_block` with its module defaults (ids, SVN, policy) replaced: the
/// fields its CLI does not expose. Its ids and SVN are ctypes `c_char` arrays, which copy up to
/// the first NUL byte (CPython's `s_set` uses strlen): the oracle writes an id such as
/// `00112233…` as all zeros. The values here have no NUL byte before their last non-zero byte;
/// nodeimg writes every byte (see `docs/measurements.md`).
#[test]
fn nondefault_ids_svn_and_policy_match_the_oracle_library() {
    if !oracle() {
        return;
    }
    let (id, author) = (fixture("idkey.pem"), fixture("authorkey.pem"));
    let family = "112233445566778899aabbccddeeff11";
    let image = "0f0e0d0c0b0a09080706050403020101";
    let v = ours(&[
        "--id-key",
        p(&id),
        "--author-key",
        p(&author),
        "--family-id",
        family,
        "--image-id",
        image,
        "--guest-svn",
        "16909060",
        "--policy",
        "smt,single-socket,abi-major=1,abi-minor=51",
    ]);
    assert_eq!(v["policy"], "0x130133");
    let code = format!(
        "import base64, sevsnpmeasure.id_block as m\n\
         m.DefaultIDs = bytes.fromhex({ids:?})\n\
         m.DefaultGuestSVN = (16909060).to_bytes(4, 'little')\n\
         m.DefaultPolicy = 0x130133\n\
         print(m.snp_calc_id_block(base64.b64decode({ld:?}), {id:?}, {author:?}))\n",
        ids = format!("{family}{image}"),
        ld = B64.encode(hex::decode(v["measurement"].as_str().unwrap()).unwrap()),
        id = p(&id),
        author = p(&author),
    );
    let out = Command::new(python()).args(["-c", &code]).output().unwrap();
    assert_ok(&out, "sevsnpmeasure.id_block.snp_calc_id_block");
    let (t_block, t_auth, ..) = parse_oracle(&String::from_utf8_lossy(&out.stdout));
    let (block, auth) = decode_ours(&v);
    assert_eq!(block, t_block);
    assert_eq!(&auth[..0x40], &t_auth[..0x40]);
    assert_eq!(&auth[0x240..0x680], &t_auth[0x240..0x680]);
    python_verifies(&block, &auth, &id, &author).unwrap();
}

/// A signed manifest holding `v`'s entry (digest, policy, ID block); (manifest, public key).
fn signed_manifest(dir: &Path, name: &str, entries: &[&Value]) -> (PathBuf, PathBuf) {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    let snp: Vec<Value> = entries
        .iter()
        .map(|v| {
            let mut e = serde_json::json!({
                "vcpus": 4, "vcpu_type": "EPYC-Milan", "vcpu_sig": v["vcpu_sig"], "vmm_type": "QEMU",
                "guest_features": "0x1", "ovmf_sha256": v["ovmf_sha256"],
                "measurement": v["measurement"], "policy": v["policy"],
            });
            if v.get("id_block").is_some() {
                e["id_block"] = v["id_block"].clone();
            }
            e
        })
        .collect();
    let m = sub.join("manifest.json");
    let doc = serde_json::json!({"schema": "nodeimg.manifest/v1", "artifacts": {}, "snp": snp});
    std::fs::write(&m, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let key = dir.join("manifest.key");
    if !key.exists() {
        assert_ok(&run_nodeimg(&["keygen", "-o", p(&key)]), "keygen");
    }
    assert_ok(&run_nodeimg(&["sign", p(&m), "--key", p(&key)]), "sign");
    (m, PathBuf::from(format!("{}.pub", key.display())))
}

/// `nodeimg --json verify` → (ok, [(check, status, detail)]).
fn verify(m: &Path, key: &Path, extra: &[&str]) -> (bool, Vec<(String, String, String)>) {
    let mut args = vec!["--json", "verify", p(m), "--key", p(key)];
    args.extend_from_slice(extra);
    let out = run_nodeimg(&args);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let f = |k: &str| c[k].as_str().unwrap().to_string();
            (f("check"), f("status"), f("detail"))
        })
        .collect();
    (r["ok"].as_bool().unwrap(), checks)
}

fn status<'a>(checks: &'a [(String, String, String)], name: &str) -> (&'a str, &'a str) {
    checks
        .iter()
        .find(|c| c.0 == name)
        .map(|c| (c.1.as_str(), c.2.as_str()))
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

/// Their pair against a manifest with our entry: accepted with the pinned keys; refused with
/// another pinned ID key, for a manifest with another policy, and when a signature is flipped.
fn verify_their_pair(dir: &Path, v: &Value, block: &[u8], auth: &[u8], id: &Path, author: &Path) {
    let tag = &v["id_block"]["id_key_digest"].as_str().unwrap()[..8];
    let (m, key) = signed_manifest(dir, tag, &[v]);
    let (bf, af) = (
        dir.join(format!("{tag}.block")),
        dir.join(format!("{tag}.auth")),
    );
    std::fs::write(&bf, B64.encode(block)).unwrap();
    std::fs::write(&af, auth).unwrap(); // raw bytes work too
    let (id_pub, author_pub) = (public_pem(dir, id), public_pem(dir, author));
    let pair = ["--snp-id-block", p(&bf), "--snp-id-auth", p(&af)];
    let pins = [
        "--snp-id-key",
        p(&id_pub),
        "--snp-author-key",
        p(&author_pub),
    ];
    let (ok, checks) = verify(&m, &key, &[&pair[..], &pins[..]].concat());
    assert!(ok, "{checks:#?}");
    for c in [
        "snp-id-block",
        "snp-id-auth",
        "snp-id-key",
        "snp-author-key",
    ] {
        assert_eq!(status(&checks, c).0, "ok", "{c}: {checks:#?}");
    }
    // Without pins the manifest's recorded key digests are the reference.
    let (ok, checks) = verify(&m, &key, &pair);
    assert!(ok, "{checks:#?}");
    // The manifest's own blocks, no pair given.
    let (ok, checks) = verify(&m, &key, &pins);
    assert!(
        ok && status(&checks, "snp-id-blocks").0 == "ok",
        "{checks:#?}"
    );

    // Another pinned ID key.
    let other = fresh_key(dir, &format!("{tag}-other.pem"));
    let other_pub = public_pem(dir, &other);
    let (ok, checks) = verify(
        &m,
        &key,
        &[&pair[..], &["--snp-id-key", p(&other_pub)]].concat(),
    );
    assert!(!ok);
    assert!(
        status(&checks, "snp-id-key")
            .1
            .contains("not the pinned one"),
        "{checks:#?}"
    );
    // A manifest that pins a stricter policy (no SMT) for the same digest.
    let mut strict = v.clone();
    strict["policy"] = "0x20000".into();
    strict.as_object_mut().unwrap().remove("id_block");
    let (m2, _) = signed_manifest(dir, &format!("{tag}-strict"), &[&strict]);
    let (ok, checks) = verify(&m2, &key, &[&pair[..], &pins[..]].concat());
    assert!(!ok);
    let (st, why) = status(&checks, "snp-id-block");
    assert!(
        st == "failed" && why.contains("policy 0x30000"),
        "{checks:#?}"
    );
    // A flipped signature byte.
    let mut bad = auth.to_vec();
    bad[0x41] ^= 0x40;
    std::fs::write(&af, &bad).unwrap();
    let (ok, checks) = verify(&m, &key, &[&pair[..], &pins[..]].concat());
    assert!(!ok);
    assert_eq!(status(&checks, "snp-id-auth").0, "failed", "{checks:#?}");
}

/// `nodeimg build` with an ID key: every entry carries a verifying ID block, and a second
/// build writes the same manifest bytes (RFC 6979).
#[test]
fn builds_with_an_id_key_are_reproducible() {
    let Some(tar) = fixture_tar() else { return };
    let d = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[measurements.snp]\novmf = [{:?}]\nvcpus = [1, 2]\nid-key = {:?}\nauthor-key = {:?}\nfamily-id = \"00112233445566778899aabbccddeeff\"\nguest-svn = 2\n\n[measurements.snp.policy]\nsingle-socket = true\n",
        fixture("ovmf_AmdSev_suffix.bin"),
        fixture("idkey.pem"),
        fixture("authorkey.pem"),
    );
    let cfg = fixture_config(d.path(), &tar, &extra);
    let mut manifests = Vec::new();
    for n in ["a", "b"] {
        let out = d.path().join(n);
        assert_ok(
            &run_nodeimg(&["build", p(&cfg), "-o", p(&out)]),
            "nodeimg build with id-key",
        );
        manifests.push(std::fs::read(out.join("manifest.json")).unwrap());
    }
    assert_eq!(
        manifests[0], manifests[1],
        "two builds with an ID key differ"
    );
    let m: Value = serde_json::from_slice(&manifests[0]).unwrap();
    let snp = m["snp"].as_array().unwrap();
    assert_eq!(snp.len(), 2);
    for e in snp {
        assert_eq!(e["policy"], "0x130000");
        assert_eq!(e["id_block"]["guest_svn"], 2);
        let q = e["qemu_args"][3].as_str().unwrap();
        assert!(
            q.contains("policy=0x130000,id-block=") && q.ends_with("author-key-enabled=on"),
            "{q}"
        );
    }
    let key = d.path().join("k");
    assert_ok(&run_nodeimg(&["keygen", "-o", p(&key)]), "keygen");
    let mp = d.path().join("a/manifest.json");
    assert_ok(
        &run_nodeimg(&[
            "sign",
            p(&mp),
            "--key",
            p(&key),
            "-o",
            p(&d.path().join("a/b.json")),
        ]),
        "sign",
    );
    let (ok, checks) = verify(
        &mp,
        &PathBuf::from(format!("{}.pub", key.display())),
        &["--bundle", p(&d.path().join("a/b.json"))],
    );
    assert!(
        ok && status(&checks, "snp-id-blocks").0 == "ok",
        "{checks:#?}"
    );
}

/// QEMU 9.1+ takes the manifest's `qemu_args` as they are: the `sev-snp-guest` property names,
/// the policy and the base64 ID block (QEMU checks its 96 bytes when the object is created; a
/// truncated one is refused, so acceptance means something). Without an SNP host QEMU then stops
/// at guest memory setup ("KVM required" under TCG), after every property was parsed.
#[test]
fn qemu_accepts_the_sev_snp_guest_arguments() {
    if !have_tool("qemu-system-x86_64") {
        return;
    }
    let (id, author) = (fixture("idkey.pem"), fixture("authorkey.pem"));
    let v = ours(&[
        "--id-key",
        p(&id),
        "--author-key",
        p(&author),
        "--policy",
        "smt,single-socket",
    ]);
    let args: Vec<String> = serde_json::from_value(v["qemu_args"].clone()).unwrap();
    assert!(
        args[3].contains("id-auth=") && args[3].contains("policy=0x130000"),
        "{args:?}"
    );
    let qemu = |args: &[String]| {
        let out = Command::new("timeout")
            .args([
                "30",
                "qemu-system-x86_64",
                "-accel",
                "tcg",
                "-machine",
                "q35",
            ])
            .args(["-nodefaults", "-display", "none", "-S"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "QEMU started an SNP guest under TCG?"
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = qemu(&args);
    assert!(
        err.contains("KVM required"),
        "QEMU refused the arguments: {err}"
    );
    let mut bad = args.clone();
    bad[3] = bad[3].replace("id-block=", "id-block=AAAA");
    let err = qemu(&bad);
    assert!(
        err.contains("not equal to 96"),
        "QEMU did not check the ID block: {err}"
    );
}
