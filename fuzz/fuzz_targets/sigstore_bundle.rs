//! Fuzz target `sigstore_bundle`: see `body/sigstore_bundle.rs` (shared with its stable corpus replay test).
//! Errors are fine; panics are bugs.
#![no_main]

#[path = "body/sigstore_bundle.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
