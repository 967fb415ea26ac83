//! Fuzz target `config_toml`: see `body/config_toml.rs` (shared with its stable corpus replay test).
//! Errors are fine; panics are bugs.
#![no_main]

#[path = "body/config_toml.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    body::run(data);
});
