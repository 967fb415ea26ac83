//! Body of the `fat` fuzz target, shared with the stable replay test
//! `builder/tests/fuzz_corpus_fat.rs` (included there by path): reading an ESP back
//! (`builder::esp::read_file` as `inspect`/`measure disk` do, `builder::esp::list` as `diff`
//! does) from an in-memory FAT image. Errors are fine; a panic or a hang is a bug.

use std::io::Cursor;

pub fn run(data: &[u8]) {
    let _ = builder::esp::read_file(Cursor::new(data), "EFI/BOOT/BOOTX64.EFI");
    let _ = builder::esp::list(Cursor::new(data));
}
