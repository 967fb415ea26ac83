//! EFI GUIDs in the byte layout firmware stores them (the first three fields little-endian):
//! firmware tables (OVMF/TDVF metadata) and UEFI variables share this one type.

use std::fmt;

/// An EFI GUID in its in-memory (mixed-endian) layout, as the firmware stores it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the textual fields `d1-d2-d3-d4[0..2]-d4[2..8]`.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn parse(s: &str) -> Option<Guid> {
        let parts: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if parts.len() != 5
            || parts.iter().zip(lens).any(|(p, l)| p.len() != l)
            || !s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
        {
            return None;
        }
        let d1 = u32::from_str_radix(parts[0], 16).ok()?;
        let d2 = u16::from_str_radix(parts[1], 16).ok()?;
        let d3 = u16::from_str_radix(parts[2], 16).ok()?;
        let tail = hex::decode(format!("{}{}", parts[3], parts[4])).ok()?;
        let mut d4 = [0u8; 8];
        d4.copy_from_slice(&tail);
        Some(Guid::new(d1, d2, d3, d4))
    }

    /// From 16 bytes in firmware layout.
    pub fn from_bytes(b: &[u8]) -> Option<Guid> {
        Some(Guid(b.get(..16)?.try_into().ok()?))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
            u16::from_le_bytes([b[6], b[7]]),
            b[8],
            b[9],
            hex::encode(&b[10..16])
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_round_trip_and_layout() {
        let g = Guid::parse("8be4df61-93ca-11d2-aa0d-00e098032b8c").unwrap();
        assert_eq!(g, crate::secureboot::EFI_GLOBAL_VARIABLE);
        assert_eq!(g.0[..4], [0x61, 0xdf, 0xe4, 0x8b]);
        assert_eq!(g.to_string(), "8be4df61-93ca-11d2-aa0d-00e098032b8c");
        assert_eq!(Guid::parse("8be4df61-93ca-11d2-aa0d-00e098032b8"), None);
        assert_eq!(Guid::parse("8be4df61-93ca-11d2-aa0d-00e098032b8g"), None);
    }
}
