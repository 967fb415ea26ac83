//! UEFI Secure Boot, as pure code: the Authenticode signer for PE images, EFI_SIGNATURE_LIST
//! (`.esl`) and time-based authenticated variable (`.auth`) payloads, the OVMF variable store
//! with keys enrolled, and the PCR 7 events the firmware measures from them
//! (`secure-boot-pcr7.md`). Private keys stay behind [`Signer`]: a file key today, a hardware
//! token later.

use thiserror::Error;

pub mod auth;
pub mod authenticode;
pub mod cert;
pub mod esl;
pub mod pcr7;
pub mod pkcs7;
pub mod varstore;

/// Why a Secure Boot artifact cannot be made or read.
#[derive(Debug, Error)]
pub enum SecureBootError {
    /// A key or certificate cannot be used.
    #[error("{0}")]
    Key(String),
    /// Input bytes are not in the expected format.
    #[error("{0}")]
    Format(String),
    /// A PE image cannot be signed.
    #[error("{0}")]
    Image(String),
}

pub use crate::guid::Guid;

/// `EFI_GLOBAL_VARIABLE`: SecureBoot, PK, KEK, SetupMode, …
pub const EFI_GLOBAL_VARIABLE: Guid = Guid::new(
    0x8be4df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
/// `EFI_IMAGE_SECURITY_DATABASE_GUID`: db, dbx, dbt, dbr.
pub const EFI_IMAGE_SECURITY_DATABASE: Guid = Guid::new(
    0xd719b2cb,
    0x3d3a,
    0x4596,
    [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
);
/// `EFI_CERT_X509_GUID`: a signature list of DER certificates.
pub const EFI_CERT_X509: Guid = Guid::new(
    0xa5c059a1,
    0x94e4,
    0x4aa7,
    [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
);
/// `EFI_CERT_SHA256_GUID`: a signature list of SHA-256 image digests.
pub const EFI_CERT_SHA256: Guid = Guid::new(
    0xc1c41626,
    0x504c,
    0x4092,
    [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28],
);
/// `EFI_CERT_TYPE_PKCS7_GUID`: the `CertType` of an `EFI_VARIABLE_AUTHENTICATION_2`.
pub const EFI_CERT_TYPE_PKCS7: Guid = Guid::new(
    0x4aafd29d,
    0x68df,
    0x49ee,
    [0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7],
);

/// `EFI_VARIABLE_NON_VOLATILE`.
pub const ATTR_NON_VOLATILE: u32 = 0x1;
/// `EFI_VARIABLE_BOOTSERVICE_ACCESS`.
pub const ATTR_BOOTSERVICE_ACCESS: u32 = 0x2;
/// `EFI_VARIABLE_RUNTIME_ACCESS`.
pub const ATTR_RUNTIME_ACCESS: u32 = 0x4;
/// `EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS`.
pub const ATTR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS: u32 = 0x20;
/// The attributes of PK, KEK, db and dbx (NV | BS | RT | time-based authenticated write).
pub const SECURE_VARIABLE_ATTRS: u32 = ATTR_NON_VOLATILE
    | ATTR_BOOTSERVICE_ACCESS
    | ATTR_RUNTIME_ACCESS
    | ATTR_TIME_BASED_AUTHENTICATED_WRITE_ACCESS;

/// `EFI_TIME` (16 bytes). Authenticated variables use it with `Pad1`, `Nanosecond`,
/// `TimeZone`, `Daylight` and `Pad2` all zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EfiTime {
    /// Year (1900–9999).
    pub year: u16,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
    /// Hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Second 0–59.
    pub second: u8,
}

impl EfiTime {
    /// The UTC time `secs` seconds after the Unix epoch (e.g. SOURCE_DATE_EPOCH).
    pub fn from_unix(secs: u64) -> EfiTime {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
        EfiTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    /// The 16-byte `EFI_TIME`.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..2].copy_from_slice(&self.year.to_le_bytes());
        b[2] = self.month;
        b[3] = self.day;
        b[4] = self.hour;
        b[5] = self.minute;
        b[6] = self.second;
        b
    }

    /// Parses 16 bytes of `EFI_TIME`, ignoring the fields authenticated variables leave zero.
    pub fn from_bytes(b: &[u8; 16]) -> EfiTime {
        EfiTime {
            year: u16::from_le_bytes([b[0], b[1]]),
            month: b[2],
            day: b[3],
            hour: b[4],
            minute: b[5],
            second: b[6],
        }
    }
}

/// UTF-16LE without a terminator (the form PCR 7 events and `.auth` signatures use).
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efi_time_from_unix() {
        assert_eq!(
            EfiTime::from_unix(0),
            EfiTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // 2024-02-29T12:34:56Z
        assert_eq!(
            EfiTime::from_unix(1_709_210_096),
            EfiTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 12,
                minute: 34,
                second: 56
            }
        );
    }
}
