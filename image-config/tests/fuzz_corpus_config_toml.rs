//! Replays `fuzz/corpus/config_toml/` (seeds: `tests/golden/full.toml`, the builder's embedded
//! default image config and a minimal config, plus cargo-fuzz finds) through the body of the
//! `config_toml` fuzz target.

#[path = "../../fuzz/fuzz_targets/body/config_toml.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn config_toml_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "config_toml",
        3,
        KNOWN_CRASHES,
        body::run,
    );
}
