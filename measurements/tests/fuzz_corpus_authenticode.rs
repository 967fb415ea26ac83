//! Replays `fuzz/corpus/authenticode/` (seeds: small PE32+ images from `pe::synth`, written by
//! `fuzz/corpus/README.md`'s command, plus cargo-fuzz finds) through the body of the
//! `authenticode` fuzz target.

#[path = "../../fuzz/fuzz_targets/body/authenticode.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn authenticode_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "authenticode",
        3,
        KNOWN_CRASHES,
        body::run,
    );
}
