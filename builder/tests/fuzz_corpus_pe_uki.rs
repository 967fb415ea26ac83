//! Replays `fuzz/corpus/pe_uki/` (seeds: small PE32+ images from `measurements::pe::synth`,
//! written by `write_pe_seeds` below; plus cargo-fuzz finds) through the body of the `pe_uki`
//! fuzz target. The same seeds go to `fuzz/corpus/authenticode/`.

#[path = "../../fuzz/fuzz_targets/body/pe_uki.rs"]
mod body;
#[path = "../../fuzz/replay.rs"]
mod replay;

use measurements::pe::synth::SynthPe;

/// Reproducers of panics that are not fixed yet (the test skips them loudly).
const KNOWN_CRASHES: &[&str] = &[];

const DATA: u32 = 0x4000_0040; // IMAGE_SCN_CNT_INITIALIZED_DATA | MEM_READ
const CODE: u32 = 0x6000_0020; // CNT_CODE | MEM_EXECUTE | MEM_READ

#[test]
fn pe_uki_corpus_replays_without_panics() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "pe_uki",
        4,
        KNOWN_CRASHES,
        body::run,
    );
}

/// The seeds, by file name.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let uki = SynthPe::default()
        .section(".text", &[0xc3; 64], CODE)
        .section(".osrel", b"ID=debian\nVERSION_ID=12\n", DATA)
        .section(".cmdline", b"console=ttyS0 roothash=00ff\0", DATA)
        .section(".uname", b"6.1.0-test", DATA)
        .section(".sbat", b"sbat,1,SBAT Version,sbat,1,https://x/\n", DATA)
        .section(".linux", &[0x4d; 300], CODE)
        .section(".initrd", &[0x07; 200], DATA);
    let symbols = SynthPe {
        symbols: Some((2, vec![8, 0, 0, 0, b'a', b'b', b'c', 0])),
        ..SynthPe::default().section(".text", &[0x90; 16], CODE)
    };
    let signed = SynthPe {
        certificate_table: Some((0x600, 0x10)),
        ..SynthPe::default().section(".data", &[1; 32], DATA)
    };
    let small_align = SynthPe {
        file_alignment: 0x20,
        section_alignment: 0x20,
        size_of_headers: 0x200,
        ..SynthPe::default().section(
            ".sdmagic",
            b"#### LoaderInfo: systemd-stub 252 ####\0",
            DATA,
        )
    };
    vec![
        ("uki-all-sections.efi", uki.build()),
        ("coff-symbols.efi", symbols.build()),
        ("certificate-table.efi", signed.build()),
        ("small-alignment-sdmagic.efi", small_align.build()),
        ("no-sections.efi", SynthPe::default().build()),
    ]
}

/// Regenerates the seeds: `NODEIMG_WRITE_FUZZ_SEEDS=1 cargo test -p builder --test
/// fuzz_corpus_pe_uki -- --ignored write_pe_seeds`.
#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn write_pe_seeds() {
    if std::env::var_os("NODEIMG_WRITE_FUZZ_SEEDS").is_none() {
        eprintln!("SKIP: set NODEIMG_WRITE_FUZZ_SEEDS=1 to write the seeds");
        return;
    }
    for target in ["pe_uki", "authenticode"] {
        let dir = replay::corpus_dir(env!("CARGO_MANIFEST_DIR"), target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, data) in seeds() {
            std::fs::write(dir.join(name), data).expect("writing a seed");
        }
    }
}

/// The seeds are what the fuzzer should start from: every one parses as a PE, and the UKI
/// one reads back as a UKI.
#[test]
fn seeds_parse() {
    for (name, data) in seeds() {
        measurements::pe::Pe::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let uki = &seeds()[0].1;
    let info = builder::uki::read(uki).expect("synthetic UKI reads back");
    assert!(
        info.cmdline.as_deref().unwrap_or("").contains("roothash="),
        "{info:?}"
    );
}
