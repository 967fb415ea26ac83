//! Replays `fuzz/corpus/gpt/` (seeds: small GPT disks with and without partitions, and their
//! truncations, accepted by `sfdisk -d`; plus cargo-fuzz finds) through the body of the `gpt`
//! fuzz target.

#[path = "../../fuzz/fuzz_targets/body/gpt.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn gpt_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "gpt",
        3,
        KNOWN_CRASHES,
        body::run,
    );
}

/// The body's CRC fix-up is the real GPT CRC: the seed disk (accepted by `sfdisk -d`) keeps
/// its bytes when fixed up, and reads back with two partitions.
#[test]
fn gpt_seed_reads_back() {
    let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), "gpt");
    let disk = std::fs::read(dir.join("two-parts-48k.img")).expect("seed");
    let mut fixed = disk.clone();
    assert!(body::fix_crcs(&mut fixed));
    assert!(fixed == disk, "CRC fix-up changed a valid GPT");
    let table = builder::disk::read_table(std::io::Cursor::new(&disk)).expect("seed reads");
    assert_eq!(table.partitions.len(), 2, "{table:?}");
}
