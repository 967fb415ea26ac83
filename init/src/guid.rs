//! GUIDs in text byte order, and the mixed-endian form GPT stores on disk.

use std::fmt;

/// A GUID/UUID held in text byte order (`00112233-4455-6677-8899-aabbccddeeff` is bytes 00..ff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(pub [u8; 16]);

/// DPS type GUID of an x86-64 root partition.
pub const DPS_ROOT_X86_64: Guid = Guid([
    0x4f, 0x68, 0xbc, 0xe3, 0xe8, 0xcd, 0x4d, 0xb1, 0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09,
]);

/// DPS type GUID of an x86-64 root-verity (hash tree) partition.
pub const DPS_ROOT_VERITY_X86_64: Guid = Guid([
    0x2c, 0x73, 0x57, 0xed, 0xeb, 0xd2, 0x46, 0xd9, 0xae, 0xc1, 0x23, 0xd4, 0x37, 0xec, 0x2b, 0xf5,
]);

/// Why a GUID text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuidParseError(pub String);

impl fmt::Display for GuidParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid GUID {:?}: expected 8-4-4-4-12 hex digits",
            self.0
        )
    }
}

impl std::error::Error for GuidParseError {}

impl Guid {
    /// Converts the 16 on-disk GPT bytes (first three fields little-endian) to text order.
    pub fn from_gpt_bytes(b: [u8; 16]) -> Guid {
        let mut t = b;
        t[0..4].reverse();
        t[4..6].reverse();
        t[6..8].reverse();
        Guid(t)
    }

    /// The on-disk GPT byte form (inverse of [`Guid::from_gpt_bytes`]).
    pub fn to_gpt_bytes(self) -> [u8; 16] {
        // The swap is its own inverse.
        Guid::from_gpt_bytes(self.0).0
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case).
    pub fn parse(text: &str) -> Result<Guid, GuidParseError> {
        let err = || GuidParseError(text.to_string());
        let groups: Vec<&str> = text.split('-').collect();
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lens != [8, 4, 4, 4, 12] {
            return Err(err());
        }
        let hex: String = groups.concat();
        let bytes = crate::hex::decode(&hex).ok_or_else(err)?;
        let arr: [u8; 16] = bytes.try_into().map_err(|_| err())?;
        Ok(Guid(arr))
    }

    /// True for the all-zero GUID that marks an unused GPT entry.
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dps_constants_match_their_text() {
        let cases = [
            (DPS_ROOT_X86_64, "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
            (
                DPS_ROOT_VERITY_X86_64,
                "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
            ),
        ];
        for (guid, text) in cases {
            assert_eq!(guid.to_string(), text);
            assert_eq!(Guid::parse(text).unwrap(), guid);
        }
    }

    #[test]
    fn gpt_bytes_are_mixed_endian() {
        // Spec §13.2: root x86-64 as stored on disk (checked with `sfdisk --dump` of such an entry).
        let disk = [
            0xe3, 0xbc, 0x68, 0x4f, 0xcd, 0xe8, 0xb1, 0x4d, 0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84,
            0xb7, 0x09,
        ];
        assert_eq!(Guid::from_gpt_bytes(disk), DPS_ROOT_X86_64);
        assert_eq!(DPS_ROOT_X86_64.to_gpt_bytes(), disk);
    }

    #[test]
    fn parse_rejects_malformed_text() {
        let bad = [
            "",
            "4f68bce3e8cd4db196e7fbcaf984b709",
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b70",
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b7090",
            "4f68bce3-e8cd-4db1-96e7fbcaf984b709-",
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b70g",
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b7é",
            "+f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        ];
        for text in bad {
            assert!(Guid::parse(text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn parse_accepts_upper_case() {
        let g = Guid::parse("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709").unwrap();
        assert_eq!(g, DPS_ROOT_X86_64);
        assert!(!g.is_nil());
        assert!(Guid([0; 16]).is_nil());
    }
}
