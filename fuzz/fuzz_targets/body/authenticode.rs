//! Body of the `authenticode` fuzz target, shared with the stable replay test
//! `measurements/tests/fuzz_corpus_authenticode.rs` (included there by path): the Authenticode
//! hashed ranges and digests of `measurements::authenticode` on untrusted PE bytes.
//! Errors are fine; a panic is a bug.

use measurements::pcr::Bank;

/// Computes the Authenticode ranges and both digests of `data`, discarding the results.
pub fn run(data: &[u8]) {
    if let Ok(pe) = measurements::pe::Pe::parse(data) {
        let _ = measurements::authenticode::hashed_ranges(&pe);
        for bank in Bank::ALL {
            let _ = measurements::authenticode::digest(&pe, bank);
        }
    }
    let _ = measurements::authenticode::digest_of(data, Bank::Sha256);
}
