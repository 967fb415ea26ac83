//! Fuzz target `snp_id_block`: see `body/snp_id_block.rs` (shared with its stable corpus replay
//! test). Errors are fine; panics are bugs.
#![no_main]

#[path = "body/snp_id_block.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
