//! Fuzzes the OVMF footer table, SEV (`ASEV`) and TDX (`TDVF`) metadata parsers and, for small
//! inputs, the SNP / SEV-ES / MRTD computations on top of them. Errors are fine; panics are bugs.
//! The stable test `measurements/tests/fuzz_corpus.rs` replays `corpus/ovmf_metadata/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    measurements::cvm::fuzz_ovmf_metadata(data);
});
