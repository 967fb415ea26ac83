//! Fuzz target `pe_uki`: see `body/pe_uki.rs` (shared with its stable corpus replay test).
//! Errors are fine; panics are bugs.
#![no_main]

#[path = "body/pe_uki.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
