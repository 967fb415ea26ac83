//! Pure measurement code: takes bytes, returns parsed structures and digests. No file access.

pub mod manifest;
pub mod pe;
