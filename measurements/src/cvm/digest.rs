//! Digest newtypes and the SNP launch-digest accumulator.
//!
//! The accumulator is a typestate: a [`LaunchDigest<Updating>`] takes page updates and has no
//! way to read its value; [`LaunchDigest::finish`] turns it into a [`LaunchDigest<Completed>`],
//! which can only be read. A half-computed digest therefore cannot end up in a manifest.

use std::marker::PhantomData;

use sha2::{Digest as _, Sha384};

use super::error::CvmError;

macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, as sev-snp-measure prints it.
            pub fn hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses lowercase or uppercase hex of exactly the right length.
            pub fn from_hex(what: &'static str, s: &str) -> Result<Self, CvmError> {
                let bad = || CvmError::BadHex { what, len: $len, found: s.to_string() };
                let v = hex::decode(s.trim()).map_err(|_| bad())?;
                v.try_into().map(Self).map_err(|_| bad())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.hex())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.hex())
            }
        }
    };
}

digest_newtype!(
    /// The SEV-SNP launch digest (`MEASUREMENT` in the attestation report), SHA-384.
    SnpMeasurement,
    48
);
digest_newtype!(
    /// The SNP launch digest after the firmware pages only (`--mode snp:ovmf-hash`); it can seed
    /// a later computation in place of the firmware bytes.
    OvmfHash,
    48
);
digest_newtype!(
    /// The SEV or SEV-ES launch digest (SHA-256; the PSP reports an HMAC over it).
    SevLaunchDigest,
    32
);
digest_newtype!(
    /// The TDX `MRTD` (SHA-384 over `MEM.PAGE.ADD` and `MR.EXTEND` records).
    Mrtd,
    48
);

/// SNP page types (SNP firmware ABI, `PAGE_INFO.PAGE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// Measured page contents.
    Normal = 1,
    /// A VMSA page.
    Vmsa = 2,
    /// A zero page.
    Zero = 3,
    /// A page whose contents are not measured.
    Unmeasured = 4,
    /// The secrets page.
    Secrets = 5,
    /// The CPUID page.
    Cpuid = 6,
}

/// Marker: the digest still takes updates and cannot be read.
#[derive(Debug, Clone, Copy)]
pub struct Updating;
/// Marker: the digest is final and can be read.
#[derive(Debug, Clone, Copy)]
pub struct Completed;

/// GPA recorded for VMSA pages (`(u64)-1` page-aligned, bits above 51 cleared).
pub const VMSA_GPA: u64 = 0x0000_FFFF_FFFF_F000;
const PAGE: usize = 4096;
const PAGE_INFO_LEN: u16 = 0x70;

/// The SNP launch digest (`LD`), updated one `PAGE_INFO` at a time.
#[derive(Debug, Clone)]
pub struct LaunchDigest<S> {
    ld: [u8; 48],
    _state: PhantomData<S>,
}

impl Default for LaunchDigest<Updating> {
    fn default() -> Self {
        Self::new()
    }
}

impl LaunchDigest<Updating> {
    /// A fresh digest (48 zero bytes).
    pub fn new() -> Self {
        Self::seeded(&OvmfHash([0; 48]))
    }

    /// A digest that continues from a precomputed firmware hash.
    pub fn seeded(h: &OvmfHash) -> Self {
        LaunchDigest {
            ld: h.0,
            _state: PhantomData,
        }
    }

    /// `LD = SHA-384(PAGE_INFO)` for one page.
    pub fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; 48]) {
        let mut info = [0u8; PAGE_INFO_LEN as usize];
        info[..48].copy_from_slice(&self.ld);
        info[48..96].copy_from_slice(contents);
        info[0x60..0x62].copy_from_slice(&PAGE_INFO_LEN.to_le_bytes());
        info[0x62] = page_type as u8;
        info[0x68..0x70].copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::digest(info).into();
    }

    /// Every whole 4 KiB page of `data` as NORMAL, starting at `gpa`. The page hashes are
    /// computed on all cores; only the chaining is sequential. A partial last page is ignored:
    /// callers check sizes first.
    pub fn normal_pages(&mut self, gpa: u64, data: &[u8]) {
        let hashes = page_hashes(data);
        for (i, h) in hashes.iter().enumerate() {
            self.update(PageType::Normal, gpa + (i * PAGE) as u64, h);
        }
    }

    /// `len / 4096` pages of `page_type` with zero CONTENTS (ZERO, UNMEASURED).
    pub fn empty_pages(&mut self, page_type: PageType, gpa: u64, len: u64) {
        for i in 0..len / PAGE as u64 {
            self.update(page_type, gpa + i * PAGE as u64, &[0; 48]);
        }
    }

    /// One VMSA page.
    pub fn vmsa_page(&mut self, page: &[u8; PAGE]) {
        self.update(PageType::Vmsa, VMSA_GPA, &Sha384::digest(page).into());
    }

    /// Ends the computation.
    pub fn finish(self) -> LaunchDigest<Completed> {
        LaunchDigest {
            ld: self.ld,
            _state: PhantomData,
        }
    }
}

impl LaunchDigest<Completed> {
    /// The final value, as a launch measurement.
    pub fn measurement(&self) -> SnpMeasurement {
        SnpMeasurement(self.ld)
    }

    /// The final value, as a firmware-only hash (when only firmware pages were added).
    pub fn ovmf_hash(&self) -> OvmfHash {
        OvmfHash(self.ld)
    }
}

/// SHA-384 of every whole page, split across threads for large inputs.
fn page_hashes(data: &[u8]) -> Vec<[u8; 48]> {
    let pages: Vec<&[u8]> = data.chunks_exact(PAGE).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || pages.len() < 256 {
        return pages.iter().map(|p| Sha384::digest(p).into()).collect();
    }
    let per = pages.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = pages
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| Sha384::digest(p).into())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}
