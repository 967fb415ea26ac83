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
