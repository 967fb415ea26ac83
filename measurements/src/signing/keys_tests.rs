//! Known-answer tests against OpenSSL 3.0.19 (vectors in `testdata/`, see its README) and
//! RFC 8032, plus key-hygiene checks.

use super::*;

const ED_PEM: &str = include_str!("testdata/openssl-ed25519.pem");
const ED_PUB: &str = include_str!("testdata/openssl-ed25519.pub");
const P256_PEM: &str = include_str!("testdata/openssl-p256.pem");
const P256_PUB: &str = include_str!("testdata/openssl-p256.pub");
const MESSAGE: &[u8] = include_bytes!("testdata/message.txt");
const ED_SIG: &[u8] = include_bytes!("testdata/message.openssl-ed25519.sig");
const P256_SIG: &[u8] = include_bytes!("testdata/message.openssl-p256.sig");

/// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 | openssl pkey -pubout`
const P384_PUB: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEtuGeK/kn9IslH87Wrj6QW/pWknEdntLP
uqRE8KGbw7QiMVgnsyhkAwPRbEkUv31fLrn2QM/SrJdj0MYv0n2jlLMSe2agxxbb
rjdpPvUCfJNvlEbdlJhhl1PhtdxK3OSg
-----END PUBLIC KEY-----
";
/// `openssl genpkey -algorithm x25519 | openssl pkey -pubout`
const X25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEA2Miu1YtTwtDBUk5AieUuPocsjLAqU5v1xN6CBeO8BAY=
-----END PUBLIC KEY-----
";

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn openssl_ed25519_key_signature_and_hint() {
    let key = SigningKey::from_pkcs8_pem(ED_PEM.as_bytes()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::Ed25519);
    let public = VerifyingKey::from_spki_pem(ED_PUB.as_bytes()).unwrap();
    assert_eq!(key.verifying_key(), public);
    assert_eq!(public.to_spki_pem(), ED_PUB);
    // openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64
    assert_eq!(
        public.hint(),
        "mUlpYC7jA+MFPMMl9kINdFTFMnBtgyOrDoWVPfWH6mo="
    );
    // Pure Ed25519 is deterministic: byte-identical to `openssl pkeyutl -sign -rawin`.
    assert_eq!(key.sign(MESSAGE), ED_SIG);
    public.verify(MESSAGE, ED_SIG).unwrap();
    // The PKCS#8 v1 layout openssl writes, byte for byte.
    assert_eq!(key.to_pkcs8_pem().unwrap().as_str(), ED_PEM);
}

#[test]
fn openssl_p256_key_signature_and_hint() {
    let key = SigningKey::from_pkcs8_pem(P256_PEM.as_bytes()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::EcdsaP256);
    let public = VerifyingKey::from_spki_pem(P256_PUB.as_bytes()).unwrap();
    assert_eq!(key.verifying_key(), public);
    assert_eq!(public.to_spki_pem(), P256_PUB);
    assert_eq!(
        public.hint(),
        "RKnE46mIy5v95iAswIF374fiPGZfvAqMUoHBK9L661I="
    );
    public.verify(MESSAGE, P256_SIG).unwrap();
    let digest: [u8; 32] = Sha256::digest(MESSAGE).into();
    public.verify_sha256(&digest, P256_SIG).unwrap();
    // Ours: DER, deterministic (RFC 6979), verifiable.
    let ours = key.sign(MESSAGE);
    assert_eq!(ours.first(), Some(&0x30), "DER SEQUENCE");
    assert_eq!(key.sign(MESSAGE), ours);
    public.verify(MESSAGE, &ours).unwrap();
    let again = SigningKey::from_pkcs8_pem(key.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    assert_eq!(again.verifying_key(), public);
}

#[test]
fn rfc8032_test_1_from_seed() {
    let seed: [u8; 32] = unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
        .try_into()
        .unwrap();
    let key = SigningKey::from_seed(Algorithm::Ed25519, &seed).unwrap();
    let public_der = key.verifying_key().spki_der();
    assert_eq!(
        hex::encode(&public_der[public_der.len() - 32..]),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    assert_eq!(
        hex::encode(key.sign(b"")),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
}

#[test]
fn p256_seed_must_be_a_scalar() {
    for bad in [[0u8; 32], [0xff; 32]] {
        assert_eq!(
            SigningKey::from_seed(Algorithm::EcdsaP256, &bad).unwrap_err(),
            KeyError::SeedOutOfRange
        );
    }
    SigningKey::from_seed(Algorithm::EcdsaP256, &[1; 32]).unwrap();
}

#[test]
fn signature_failures_are_classified() {
    let ed = VerifyingKey::from_spki_pem(ED_PUB.as_bytes()).unwrap();
    let p = VerifyingKey::from_spki_pem(P256_PUB.as_bytes()).unwrap();
    assert_eq!(ed.verify(b"other", ED_SIG), Err(SignatureError::Mismatch));
    assert_eq!(p.verify(b"other", P256_SIG), Err(SignatureError::Mismatch));
    assert!(matches!(
        ed.verify(MESSAGE, &ED_SIG[1..]),
        Err(SignatureError::Encoding(_))
    ));
    assert!(matches!(
        p.verify(MESSAGE, ED_SIG),
        Err(SignatureError::Encoding(_))
    ));
    assert_eq!(
        ed.verify_sha256(&[0; 32], ED_SIG),
        Err(SignatureError::NeedsMessage)
    );
    // Keys of the other algorithm do not verify each other's signatures.
    assert!(ed.verify(MESSAGE, P256_SIG).is_err());
}

#[test]
fn key_parse_errors_name_the_problem() {
    let cases: [(&str, bool, &str); 8] = [
        (ED_PUB, true, "found `PUBLIC KEY` (this is a public key"),
        (ED_PEM, false, "found `PRIVATE KEY` (this is a private key; pass the public key"),
        (
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            true,
            "cosign's encrypted key format is not supported",
        ),
        (
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
            true,
            "openssl pkcs8 -topk8",
        ),
        (P384_PUB, false, "EC key on curve 1.3.132.0.34"),
        (X25519_PUB, false, "algorithm OID 1.3.101.110"),
        ("not pem", true, "not a PRIVATE KEY PEM file"),
        (
            "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n",
            false,
            "malformed SubjectPublicKeyInfo",
        ),
    ];
    for (pem, private, want) in cases {
        let e = if private {
            SigningKey::from_pkcs8_pem(pem.as_bytes()).unwrap_err()
        } else {
            VerifyingKey::from_spki_pem(pem.as_bytes()).unwrap_err()
        };
        assert!(e.to_string().contains(want), "{pem}\n  → {e}");
    }
}

#[test]
fn key_material_never_shows_in_debug_or_errors() {
    for pem in [ED_PEM, P256_PEM] {
        let key = SigningKey::from_pkcs8_pem(pem.as_bytes()).unwrap();
        let der = pkcs8::der::pem::decode_vec(pem.as_bytes()).unwrap().1;
        // The secret is the OCTET STRING (04 20) in both encodings.
        let at = der.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
        let secret_hex = hex::encode(&der[at..at + 32]);
        let secrets = [secret_hex.clone(), secret_hex[16..48].to_string()];
        let debug = format!("{key:?} {:?} {:#?}", key, key.verifying_key());
        assert!(debug.contains("public_key_hint"), "{debug}");
        for s in &secrets {
            assert!(
                !debug.contains(s.as_str()),
                "Debug shows key material: {debug}"
            );
        }
        // Malformed keys: truncated DER, and a flipped byte in the secret's length.
        let mut flipped = der.clone();
        flipped[at - 1] ^= 0x01;
        for bad in [&der[..der.len() - 1], &flipped[..]] {
            let bad_pem =
                pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, bad).unwrap();
            let e = SigningKey::from_pkcs8_pem(bad_pem.as_bytes()).unwrap_err();
            let text = format!("{e} {e:?}");
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "error shows key material: {text}"
                );
            }
        }
    }
}

/// ECDSA signatures come out low-S (about half of raw RFC 6979 signatures are high-S), and
/// still verify.
#[test]
fn p256_signatures_are_low_s() {
    let key = SigningKey::from_seed(Algorithm::EcdsaP256, &[0x5a; 32]).unwrap();
    let public = key.verifying_key();
    let mut normalized_some = false;
    for i in 0u32..64 {
        let msg = format!("message {i}");
        let der = key.sign(msg.as_bytes());
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        assert!(
            sig.normalize_s().is_none(),
            "high-S signature for message {i}"
        );
        public.verify(msg.as_bytes(), &der).unwrap();
        // The raw RFC 6979 signature of some of these messages is high-S: the test would
        // catch a signer that stopped normalizing.
        if let Secret::P256(k) = &key.0 {
            use p256::ecdsa::signature::Signer;
            let raw: p256::ecdsa::Signature = k.sign(msg.as_bytes());
            normalized_some |= raw.normalize_s().is_some();
        }
    }
    assert!(normalized_some, "no message gave a high-S raw signature");
}
