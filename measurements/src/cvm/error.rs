//! Why a firmware image could not be parsed or a launch digest not computed.
//!
//! Offsets are file offsets into the firmware image (counted from its start) unless the variant
//! says otherwise.

use thiserror::Error;

/// Result type of the `cvm` module.
pub type Result<T> = std::result::Result<T, CvmError>;

/// Every way a confidential-VM measurement can fail.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CvmError {
    /// A structure does not fit in the firmware image.
    #[error(
        "{what} at offset {off} ({len} bytes) runs past the end of the {size}-byte firmware",
        off = signed_hex(*offset)
    )]
    Truncated {
        /// The structure that was being read.
        what: &'static str,
        /// Where it starts (may be negative when it would start before the image).
        offset: i64,
        /// How many bytes it needs.
        len: u64,
        /// Size of the firmware image.
        size: u64,
    },
    /// A field holds a value the format does not allow.
    #[error("{what} at offset {offset:#x}: expected {expected}, found {found}")]
    Unexpected {
        /// The field.
        what: &'static str,
        /// Its file offset.
        offset: u64,
        /// What the format requires.
        expected: String,
        /// What the image holds.
        found: String,
    },
    /// A footer-table entry the computation needs is absent.
    #[error("the firmware's OVMF footer table has no {what} entry (GUID {guid}); {why}")]
    MissingEntry {
        /// Entry name.
        what: &'static str,
        /// Its GUID.
        guid: &'static str,
        /// Why it is needed.
        why: &'static str,
    },
    /// An SEV metadata section cannot be measured as given.
    #[error("SEV metadata item {index} (GPA {gpa:#x}, size {size:#x}, type {kind:#x}): {why}")]
    SevSection {
        /// Position in the metadata list.
        index: usize,
        /// Its guest-physical address.
        gpa: u32,
        /// Its size in bytes.
        size: u32,
        /// Its raw type value.
        kind: u32,
        /// What is wrong.
        why: String,
    },
    /// A TDVF metadata section is inconsistent.
    #[error("TDX metadata section {index} (type {kind}, GPA {gpa:#x}): {why}")]
    TdxSection {
        /// Position in the metadata list.
        index: usize,
        /// Its raw type value.
        kind: u32,
        /// Its `MemoryAddress`.
        gpa: u64,
        /// What is wrong.
        why: String,
    },
    /// The firmware has no TDVF metadata at all.
    #[error("the firmware has no TDX metadata (no footer entry {guid}); use a unified OVMF.fd built with TDX support")]
    NoTdxMetadata {
        /// The footer GUID that points at the metadata.
        guid: &'static str,
    },
    /// The firmware image cannot be mapped page by page.
    #[error("firmware size {size} is not a multiple of 4096 (SNP measures whole pages)")]
    FirmwareSize {
        /// Its size in bytes.
        size: u64,
    },
    /// An image larger than the guest-physical space below where it must end.
    #[error("image is {size} bytes; it does not fit below guest-physical address {end:#x}")]
    FirmwareTooLarge {
        /// Its size in bytes.
        size: u64,
        /// Where it must end (4 GiB for a `-bios` image).
        end: u64,
    },
    /// Measured direct boot was requested but the firmware cannot do it.
    #[error("kernel given but {why}")]
    NoKernelHashes {
        /// What the firmware lacks (sev-snp-measure's wording).
        why: &'static str,
    },
    /// More than one vCPU but no AP entry point.
    #[error("{vcpus} vCPUs need an AP entry point but the firmware's SEV-ES reset block holds 0")]
    NoApEntry {
        /// The requested vCPU count.
        vcpus: u32,
    },
    /// A vCPU type name that is not in the table.
    #[error("unknown vCPU type `{name}`; known types: {known}")]
    UnknownVcpuType {
        /// What was asked for.
        name: String,
        /// Comma-separated list of the known names.
        known: String,
    },
    /// A VMM type name that is not `QEMU`, `ec2` or `gce`.
    #[error("unknown VMM type `{0}`; expected QEMU, ec2 or gce (case-sensitive)")]
    UnknownVmmType(String),
    /// A hex digest of the wrong form.
    #[error("{what}: expected {len} bytes as hex, found {found:?}")]
    BadHex {
        /// What the value is.
        what: &'static str,
        /// Expected length in bytes.
        len: usize,
        /// The input.
        found: String,
    },
}

/// `-0x10` rather than a two's-complement `0xfff…f0` for offsets before the image.
fn signed_hex(v: i64) -> String {
    if v < 0 {
        format!("-{:#x}", v.unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}
