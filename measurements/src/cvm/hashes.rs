//! The SEV hashes table for measured direct boot (QEMU `-kernel` with `kernel-hashes=on`;
//! QEMU `target/i386/sev.c`, OVMF `BlobVerifierLibSevHashes`).
//!
//! `GUID ‖ u16 168` then three entries `GUID ‖ u16 50 ‖ SHA-256` for the command line, the
//! initrd and the kernel, zero-padded to 176 bytes.

use sha2::{Digest as _, Sha256};

use super::ovmf::Guid;

/// Size of the padded table.
pub const TABLE_LEN: usize = 176;

const HEADER_GUID: Guid = Guid::new(
    0x9438_d606,
    0x4f22,
    0x4cc9,
    [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
);
const CMDLINE_GUID: Guid = Guid::new(
    0x97d0_2dd8,
    0xbd20,
    0x4c94,
    [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
);
const INITRD_GUID: Guid = Guid::new(
    0x44ba_f731,
    0x3a2f,
    0x4bd7,
    [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
);
const KERNEL_GUID: Guid = Guid::new(
    0x4de7_9437,
    0xabd2,
    0x427f,
    [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
);
const ENTRY_LEN: u16 = 16 + 2 + 32;
const TABLE_USED: u16 = 16 + 2 + 3 * ENTRY_LEN;

/// SHA-256 digests of what QEMU loads for measured direct boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevHashes {
    /// SHA-256 of the kernel file, exactly as passed to QEMU.
    pub kernel: [u8; 32],
    /// SHA-256 of the initrd (of nothing when there is none).
    pub initrd: [u8; 32],
    /// SHA-256 of the command line followed by one NUL byte.
    pub cmdline: [u8; 32],
}

impl SevHashes {
    /// Hashes the kernel, the optional initrd and the optional `-append` string. An absent or
    /// empty command line hashes as the single byte `00`.
    pub fn new(kernel: &[u8], initrd: Option<&[u8]>, append: Option<&str>) -> Self {
        let mut cmd = Sha256::new();
        cmd.update(append.unwrap_or("").as_bytes());
        cmd.update([0u8]);
        SevHashes {
            kernel: Sha256::digest(kernel).into(),
            initrd: Sha256::digest(initrd.unwrap_or(&[])).into(),
            cmdline: cmd.finalize().into(),
        }
    }

    /// The 176-byte table.
    pub fn table(&self) -> [u8; TABLE_LEN] {
        let mut t = [0u8; TABLE_LEN];
        t[..16].copy_from_slice(&HEADER_GUID.0);
        t[16..18].copy_from_slice(&TABLE_USED.to_le_bytes());
        let entries = [
            (CMDLINE_GUID, &self.cmdline),
            (INITRD_GUID, &self.initrd),
            (KERNEL_GUID, &self.kernel),
        ];
        for (i, (guid, hash)) in entries.into_iter().enumerate() {
            let at = 18 + i * usize::from(ENTRY_LEN);
            t[at..at + 16].copy_from_slice(&guid.0);
            t[at + 16..at + 18].copy_from_slice(&ENTRY_LEN.to_le_bytes());
            t[at + 18..at + 50].copy_from_slice(hash);
        }
        t
    }

    /// A 4 KiB page holding the table at `offset` (`None` when it would cross the page end).
    pub fn page(&self, offset: usize) -> Option<Box<[u8; 4096]>> {
        let end = offset.checked_add(TABLE_LEN).filter(|&e| e <= 4096)?;
        let mut p = Box::new([0u8; 4096]);
        p[offset..end].copy_from_slice(&self.table());
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table from the spec (§6), as sev-snp-measure 0.0.13 builds it for an empty kernel
    /// and initrd and `console=ttyS0 loglevel=7`.
    #[test]
    fn known_table() {
        let t = SevHashes::new(b"", Some(b""), Some("console=ttyS0 loglevel=7")).table();
        let want = concat!(
            "06d63894224fc94cb479a793d411fd21a800",
            "d82dd09720bd944caa78e7714d36ab2a3200",
            "321c8eec6a77bad179511397f913a083067ad8cb737bb260aacbfe8df70fc50a",
            "31f7ba442f3ad74b9af141e29169781d3200",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "3794e74dd2ab7f42b835d5b172d2045b3200",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "0000000000000000"
        );
        assert_eq!(hex::encode(t), want);
        assert_eq!(
            hex::encode(Sha256::digest(t)),
            "9b8d003b7deacde5e1e4e53ffdeaeefcfeec67cdf0f7362fafe984996f03b59d"
        );
    }

    #[test]
    fn empty_and_absent_cmdline_agree() {
        assert_eq!(
            SevHashes::new(b"k", None, None),
            SevHashes::new(b"k", Some(b""), Some(""))
        );
    }

    #[test]
    fn page_refuses_to_cross_the_page_end() {
        let h = SevHashes::new(b"", None, None);
        assert!(h.page(4096 - TABLE_LEN).is_some());
        assert!(h.page(4096 - TABLE_LEN + 1).is_none());
    }
}
