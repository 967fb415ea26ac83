//! Replays `fuzz/corpus/fat/` (seeds: FAT12 and FAT16 ESPs from dosfstools + mtools, written by
//! `fuzz/make-fat-seeds.sh`; plus cargo-fuzz finds) through the body of the `fat` fuzz target.

#[path = "../../fuzz/fuzz_targets/body/fat.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

#[test]
fn fat_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "fat",
        2,
        KNOWN_CRASHES,
        body::run,
    );
}

/// The seeds are valid ESPs, so the fuzzer starts past the boot sector checks.
#[test]
fn fat_seeds_read() {
    let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), "fat");
    for name in ["fat12-64k.img", "fat16-3m.img"] {
        let img = std::fs::read(dir.join(name)).expect("seed");
        let uki = builder::esp::read_file(std::io::Cursor::new(&img), "efi/boot/bootx64.efi")
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(uki, b"MZ\x90\0uki", "{name}");
        let l = builder::esp::list(std::io::Cursor::new(&img))
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(l.label, "ESP", "{name}");
        assert!(
            matches!(
                l.items.get("EFI/Linux/a long name-1.efi"),
                Some(builder::esp::Item::File { len: 3000, .. })
            ),
            "{name}: {:?}",
            l.items.keys().collect::<Vec<_>>()
        );
    }
}
