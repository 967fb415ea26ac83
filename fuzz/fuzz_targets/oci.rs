//! Fuzz target `oci`: see `body/oci.rs` (shared with its stable corpus replay test).
//! Errors are fine; panics are bugs.
#![no_main]

#[path = "body/oci.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
