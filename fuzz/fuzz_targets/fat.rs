//! Fuzz target `fat`: see `body/fat.rs` (shared with its stable corpus replay test).
//! Errors are fine; panics are bugs.
#![no_main]

#[path = "body/fat.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
