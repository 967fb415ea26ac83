//! Pure measurement code: takes bytes, returns parsed structures and digests. No file access.

pub mod attest;
pub mod authenticode;
pub mod cvm;
pub mod eventlog;
pub mod guid;
pub mod manifest;
pub mod multihash;
pub mod pcr;
pub mod pe;
pub mod platforms;
pub mod secureboot;
pub mod signer;
pub mod signing;

/// Deterministic pseudo-random bytes (xorshift) for unit-test payloads.
#[cfg(test)]
pub(crate) fn test_noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
