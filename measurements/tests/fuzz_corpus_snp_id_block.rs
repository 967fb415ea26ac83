//! Replays `fuzz/corpus/snp_id_block/` (seeds: sev-snp-measure's ID block + ID auth of
//! `tests/data/cvm/idblock-oracle.txt`, one without author key, truncations, policy spellings)
//! through the body of the `snp_id_block` fuzz target.

#[path = "../../fuzz/fuzz_targets/body/snp_id_block.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn snp_id_block_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "snp_id_block",
        5,
        KNOWN_CRASHES,
        body::run,
    );
}
