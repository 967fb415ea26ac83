//! Replays `fuzz/corpus/sigstore_bundle/` (seeds: the cosign 2.5 bundles and manifest of
//! `measurements/src/signing/testdata/`, plus cargo-fuzz finds) through the body of the
//! `sigstore_bundle` fuzz target.

#[path = "../../fuzz/fuzz_targets/body/sigstore_bundle.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn sigstore_bundle_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "sigstore_bundle",
        5,
        KNOWN_CRASHES,
        body::run,
    );
}

/// The seed bundles really verify against the fixed key and manifest of the target, so the
/// fuzzer starts from inputs that reach the checks after the signature.
#[test]
fn seed_bundles_verify_against_the_target_key() {
    let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), "sigstore_bundle");
    let p256 = std::fs::read(dir.join("cosign-att-p256.sigstore.json")).expect("seed");
    let key = measurements::signing::VerifyingKey::from_spki_pem(body::KEYS[0]).expect("key");
    measurements::signing::verify::verify(
        &key,
        &p256,
        body::MANIFEST,
        measurements::signing::verify::Policy {
            allow_message_signature: true,
        },
    )
    .expect("seed verifies");
}
