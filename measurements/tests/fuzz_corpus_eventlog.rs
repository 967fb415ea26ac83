//! Replays `fuzz/corpus/eventlog/` (seeds: the real OVMF + systemd-stub logs of
//! `fixtures/eventlog/`, plus cargo-fuzz finds) through the body of the `eventlog` fuzz target.

#[path = "../../fuzz/fuzz_targets/body/eventlog.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn eventlog_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "eventlog",
        4,
        KNOWN_CRASHES,
        body::run,
    );
}
