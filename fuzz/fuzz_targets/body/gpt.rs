//! Body of the `gpt` fuzz target, shared with the stable replay test
//! `builder/tests/fuzz_corpus_gpt.rs` (included there by path): the GPT reader
//! `builder::disk::read_table` on an in-memory disk. Errors are fine; a panic is a bug.

use std::io::Cursor;

/// Reads the primary GPT of the disk image `data` and describes every partition.
pub fn run(data: &[u8]) {
    if let Ok(table) = builder::disk::read_table(Cursor::new(data)) {
        for p in &table.partitions {
            let _ = builder::disk::type_name(&p.type_guid);
            let _ = builder::disk::guid_to_string(&p.unique_guid);
        }
    }
    let _ = builder::disk::read(Cursor::new(data));
}
