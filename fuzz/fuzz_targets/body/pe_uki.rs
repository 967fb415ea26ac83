//! Body of the `pe_uki` fuzz target, shared with the stable replay test
//! `builder/tests/fuzz_corpus_pe_uki.rs` (included there by path): the PE parser of
//! `measurements::pe` and the UKI reader `builder::uki::read` on untrusted bytes.
//! Errors are fine; a panic is a bug.

/// Runs every read-only PE accessor and the UKI reader on `data`, discarding the results.
pub fn run(data: &[u8]) {
    if let Ok(pe) = measurements::pe::Pe::parse(data) {
        for name in [
            ".linux", ".initrd", ".cmdline", ".osrel", ".uname", ".sbat", ".text",
        ] {
            if let Some(section) = pe.section(name) {
                let _ = section.name_lossy();
                let _ = pe.raw_data(section);
                let _ = pe.contents(section);
            }
            let _ = pe.section_data(name);
        }
        let _ = pe.certificate_table();
        let _ = pe.stub_version();
    }
    let _ = measurements::pe::parse_sdmagic(data);
    let _ = builder::uki::read(data);
}
