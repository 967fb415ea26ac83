//! Sign/verify round trips, cosign 2.5 bundles (testdata/README.md), and tamper tests.

use super::dsse::{Envelope, INTOTO_PAYLOAD_TYPE};
use super::statement::Subject;
use super::verify::{check_artifact, Policy, Signed};

/// Verification with the default policy (the nodeimg in-toto statement only).
fn verify(
    key: &VerifyingKey,
    bundle: &[u8],
    manifest: &[u8],
) -> Result<(ManifestDoc, Signed), Error> {
    super::verify::verify(key, bundle, manifest, Policy::default())
}
use super::*;

const MANIFEST: &[u8] = include_bytes!("testdata/manifest.json");
const COSIGN_P256_PUB: &str = include_str!("testdata/cosign-p256.pub");
const ED_PUB: &str = include_str!("testdata/openssl-ed25519.pub");
const ED_PEM: &str = include_str!("testdata/openssl-ed25519.pem");
const P256_PEM: &str = include_str!("testdata/openssl-p256.pem");
/// sha256("disk"), the `disk.raw` of testdata/manifest.json.
const DISK_SHA: &str = "1044dec7206e8d7c9fbb4ae8f766668406d2567fc7fc1a160a9d4700fcf8f8e9";

fn keys() -> [SigningKey; 2] {
    [
        SigningKey::from_pkcs8_pem(ED_PEM.as_bytes()).unwrap(),
        SigningKey::from_pkcs8_pem(P256_PEM.as_bytes()).unwrap(),
    ]
}

#[test]
fn sign_then_verify_both_algorithms() {
    for key in keys() {
        let bundle = sign_manifest(&key, MANIFEST).unwrap();
        assert_eq!(
            sign_manifest(&key, MANIFEST).unwrap(),
            bundle,
            "deterministic"
        );
        let (doc, signed) = verify(&key.verifying_key(), &bundle, MANIFEST).unwrap();
        assert_eq!(doc.artifacts["disk.raw"], DISK_SHA);
        let Signed::Statement(st) = signed else {
            panic!("expected a statement")
        };
        assert_eq!(st.subject.len(), 2);
        check_artifact(&doc, "disk.raw", DISK_SHA).unwrap();
        let text = String::from_utf8(bundle).unwrap();
        assert!(text.contains("\"mediaType\": \"application/vnd.dev.sigstore.bundle.v0.3+json\""));
        assert!(text.contains(&key.verifying_key().hint()), "{text}");
    }
}

#[test]
fn accepts_bundles_cosign_made() {
    let p256 = VerifyingKey::from_spki_pem(COSIGN_P256_PUB.as_bytes()).unwrap();
    let ed = VerifyingKey::from_spki_pem(ED_PUB.as_bytes()).unwrap();
    let cases: [(&str, &VerifyingKey, bool); 4] = [
        (
            include_str!("testdata/cosign-att-p256.sigstore.json"),
            &p256,
            true,
        ),
        (
            include_str!("testdata/cosign-att-ed.sigstore.json"),
            &ed,
            true,
        ),
        (
            include_str!("testdata/cosign-sig-p256.sigstore.json"),
            &p256,
            false,
        ),
        (
            include_str!("testdata/cosign-sig-ed.sigstore.json"),
            &ed,
            false,
        ),
    ];
    let lenient = Policy {
        allow_message_signature: true,
    };
    for (bundle, key, attestation) in cases {
        let (doc, signed) = super::verify::verify(key, bundle.as_bytes(), MANIFEST, lenient)
            .unwrap_or_else(|e| panic!("{bundle}: {e}"));
        // By default a sign-blob bundle is refused: it does not say it signs a manifest.
        if !attestation {
            let e = verify(key, bundle.as_bytes(), MANIFEST).unwrap_err();
            assert!(matches!(e, Error::MessageSignatureNotAllowed), "{e}");
        }
        match signed {
            // cosign 2.5 attest-blob: Statement v0.1, the one blob as the only subject.
            Signed::Statement(st) => {
                assert!(attestation);
                let r = verify::check_subjects(&st, &doc).unwrap();
                assert_eq!(r.matched, ["manifest.json"]);
                assert_eq!(r.not_listed, ["disk.raw"]);
            }
            Signed::Manifest => assert!(!attestation),
        }
        // The other key is refused by its hint.
        let other = if std::ptr::eq(key, &p256) { &ed } else { &p256 };
        let e = verify(other, bundle.as_bytes(), MANIFEST).unwrap_err();
        assert!(matches!(e, Error::KeyHint { .. }), "{e}");
    }
}

/// Flips every byte of `data` in turn and checks `check` fails each time.
fn every_flip_fails(data: &[u8], what: &str, check: impl Fn(&[u8]) -> Result<(), Error>) {
    let mut kinds = std::collections::HashSet::new();
    for i in 0..data.len() {
        let mut bad = data.to_vec();
        bad[i] ^= 0x01;
        match check(&bad) {
            Ok(()) => panic!(
                "{what}: flipping byte {i} ({:?}) still verifies",
                data[i] as char
            ),
            Err(e) => kinds.insert(std::mem::discriminant(&e)),
        };
    }
    assert!(
        kinds.len() >= 3,
        "{what}: only {} kinds of error",
        kinds.len()
    );
}

#[test]
fn any_flipped_byte_of_bundle_or_manifest_fails() {
    for key in keys() {
        let vk = key.verifying_key();
        let bundle = sign_manifest(&key, MANIFEST).unwrap();
        let check_bundle = |b: &[u8]| verify(&vk, b, MANIFEST).map(drop);
        every_flip_fails(&bundle, "bundle", check_bundle);
        let check_manifest = |m: &[u8]| verify(&vk, &bundle, m).map(drop);
        every_flip_fails(MANIFEST, "manifest", check_manifest);
    }
    let p256 = VerifyingKey::from_spki_pem(COSIGN_P256_PUB.as_bytes()).unwrap();
    let cosign = include_bytes!("testdata/cosign-att-p256.sigstore.json");
    every_flip_fails(cosign, "cosign bundle", |b| {
        verify(&p256, b, MANIFEST).map(drop)
    });
}

#[test]
fn tampered_parts_fail_with_specific_messages() {
    let key = &keys()[0];
    let vk = key.verifying_key();
    let bundle = String::from_utf8(sign_manifest(key, MANIFEST).unwrap()).unwrap();
    let b: Bundle = serde_json::from_str(&bundle).unwrap();
    let env = b.dsse_envelope.clone().unwrap();
    let with_env = |f: &dyn Fn(&mut Envelope)| {
        let mut b = b.clone();
        f(b.dsse_envelope.as_mut().unwrap());
        b.to_bytes()
    };
    let flip_b64 = |s: &str, at: usize| {
        let mut c: Vec<char> = s.chars().collect();
        c[at] = if c[at] == 'A' { 'B' } else { 'A' };
        c.into_iter().collect::<String>()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "media type",
            bundle.replace("bundle.v0.3", "bundle.v0.4").into_bytes(),
            "unsupported bundle mediaType",
        ),
        (
            "hint",
            bundle.replace(&vk.hint(), &flip_b64(&vk.hint(), 3)).into_bytes(),
            "is not the pinned key's",
        ),
        (
            "payload",
            with_env(&|e| e.payload = flip_b64(&env.payload, 40)),
            "signature over the DSSE envelope (PAE of payloadType and payload) does not verify with the pinned ed25519 key",
        ),
        (
            "payload type",
            with_env(&|e| e.payload_type = "application/json".into()),
            "signature over the DSSE envelope",
        ),
        (
            "signature",
            with_env(&|e| e.signatures[0].sig = flip_b64(&env.signatures[0].sig, 10)),
            "does not verify",
        ),
        (
            "truncated signature",
            with_env(&|e| e.signatures[0].sig = env.signatures[0].sig[4..].to_string()),
            "the signature is malformed: 61 bytes, expected 64",
        ),
        ("not json", bundle.as_bytes()[1..].to_vec(), "not a Sigstore bundle JSON"),
    ];
    for (what, bad, want) in cases {
        let e = verify(&vk, &bad, MANIFEST).unwrap_err().to_string();
        assert!(e.contains(want), "{what}: {e}");
    }
}

/// A validly signed statement with chosen subjects and predicate.
fn signed_statement(key: &SigningKey, subjects: &[(&str, &str)], predicate: &[u8]) -> Vec<u8> {
    let st = Statement {
        statement_type: statement::STATEMENT_V1.into(),
        subject: subjects
            .iter()
            .map(|(n, d)| Subject {
                name: n.to_string(),
                digest: [("sha256".to_string(), d.to_string())].into(),
            })
            .collect(),
        predicate_type: PREDICATE_TYPE.into(),
        predicate: serde_json::from_slice(predicate).unwrap(),
    };
    let env = Envelope::sign(key, INTOTO_PAYLOAD_TYPE, &st.to_bytes()).unwrap();
    Bundle::with_envelope(&key.verifying_key(), env).to_bytes()
}

#[test]
fn signed_but_different_statements_name_what_differs() {
    let key = &keys()[1];
    let vk = key.verifying_key();
    let m_sha = ManifestDoc::parse(MANIFEST).unwrap().sha256;
    let other = DISK_SHA.replace('1', "2");
    let edited = String::from_utf8(MANIFEST.to_vec())
        .unwrap()
        .replace("\"size\":4", "\"size\":5");
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [u8], String);
    let cases: Vec<Case> = vec![
        (
            vec![("disk.raw", &other), ("manifest.json", &m_sha)],
            MANIFEST,
            format!("subject \"disk.raw\": the statement signs sha256:{other}, but the manifest lists disk.raw as sha256:{DISK_SHA}"),
        ),
        (
            vec![("disk.raw", DISK_SHA)],
            MANIFEST,
            "does not list manifest.json among its subjects".into(),
        ),
        (
            vec![("initrd", DISK_SHA), ("manifest.json", &m_sha)],
            MANIFEST,
            "subject \"initrd\"".into(),
        ),
        (
            vec![("manifest.json", &m_sha), ("manifest.json", &m_sha)],
            MANIFEST,
            "listed twice".into(),
        ),
        (
            vec![("manifest.json", &m_sha)],
            edited.as_bytes(),
            "predicate differs from manifest.json at artifacts.disk.raw.size: signed 5, manifest has 4".into(),
        ),
    ];
    for (subjects, predicate, want) in cases {
        let bundle = signed_statement(key, &subjects, predicate);
        let e = verify(&vk, &bundle, MANIFEST).unwrap_err().to_string();
        assert!(e.contains(&want), "{subjects:?}: {e}\n  want {want}");
    }
}

#[test]
fn artifact_check_names_both_digests() {
    let doc = ManifestDoc::parse(MANIFEST).unwrap();
    let e = check_artifact(&doc, "disk.raw", &"0".repeat(64)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "disk.raw: the signed manifest says sha256:{DISK_SHA}, the file given is sha256:{}",
            "0".repeat(64)
        )
    );
    let e = check_artifact(&doc, "uki.efi", DISK_SHA).unwrap_err();
    assert_eq!(e.to_string(), "the manifest lists no artifact \"uki.efi\"");
}

#[test]
fn a_signature_error_names_its_cause_once_in_a_chain() {
    let e = Error::Signature {
        over: "the DSSE envelope",
        algorithm: Algorithm::Ed25519,
        hint: "abc".into(),
        cause: SignatureError::Mismatch,
    };
    let text = e.to_string();
    assert_eq!(
        text.matches("does not verify with this key").count(),
        1,
        "{text}"
    );
    // No source: a chain printer (anyhow's `{:#}`) would print the cause a second time.
    assert!(std::error::Error::source(&e).is_none());
}
