//! Body of the `sigstore_bundle` fuzz target, shared with the stable replay test
//! `measurements/tests/fuzz_corpus_sigstore_bundle.rs` (included there by path): the Sigstore
//! bundle / DSSE JSON parser of `measurements::signing` and full verification against fixed
//! test keys and a fixed `manifest.json` (those of `measurements/src/signing/testdata`, which
//! the seed bundles were made for, so the fuzzer can reach the post-signature checks).
//! Errors are fine; a panic is a bug.

use measurements::signing::{bundle::Content, verify, Bundle, ManifestDoc, VerifyingKey};

pub const MANIFEST: &[u8] =
    include_bytes!("../../../measurements/src/signing/testdata/manifest.json");
pub const KEYS: [&[u8]; 2] = [
    include_bytes!("../../../measurements/src/signing/testdata/cosign-p256.pub"),
    include_bytes!("../../../measurements/src/signing/testdata/openssl-ed25519.pub"),
];

/// Parses `data` as a bundle (and as a manifest), then verifies it as a bundle for
/// [`MANIFEST`] with each fixed key.
pub fn run(data: &[u8]) {
    if let Ok(bundle) = Bundle::parse(data) {
        let _ = bundle.hint();
        if let Ok(Content::Dsse(envelope)) = bundle.content() {
            for key in keys() {
                let _ = envelope.verify(&key);
            }
        }
    }
    let _ = ManifestDoc::parse(data);
    for key in keys() {
        let _ = verify::verify(
            &key,
            data,
            MANIFEST,
            verify::Policy {
                allow_message_signature: true,
            },
        );
    }
}

fn keys() -> impl Iterator<Item = VerifyingKey> {
    KEYS.into_iter()
        .map(|pem| VerifyingKey::from_spki_pem(pem).expect("fixed test key parses"))
}
