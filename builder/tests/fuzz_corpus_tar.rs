//! Replays `fuzz/corpus/tar/` (seeds: a small GNU and a pax tar with a file, a symlink, a
//! hardlink and a fifo, and its gzip and zstd forms; plus cargo-fuzz finds) through the body
//! of the `tar` fuzz target.

#[path = "../../fuzz/fuzz_targets/body/tar.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn tar_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "tar",
        4,
        KNOWN_CRASHES,
        body::run,
    );
}

/// Every seed is a valid rootfs tar, so the fuzzer starts past the format detection.
#[test]
fn tar_seeds_load() {
    let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), "tar");
    let work = std::env::temp_dir().join(format!("nodeimg-tar-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    for name in [
        "small.tar",
        "small-pax.tar",
        "small.tar.gz",
        "small.tar.zst",
    ] {
        let source = image_config::RootfsSource::Tar(dir.join(name));
        let loaded = builder::rootfs::load(&source, 0, &work, None)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(loaded.tree.get("etc/hostname").is_some(), "{name}");
    }
    std::fs::remove_dir_all(&work).expect("removing the work dir");
}
