//! Hex encoding without dependencies.

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Decodes hex (either case); `None` on odd length or a non-hex character.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        let cases: [(&str, Option<&[u8]>); 7] = [
            ("", Some(&[])),
            ("00ff", Some(&[0x00, 0xff])),
            ("0A1b", Some(&[0x0a, 0x1b])),
            ("0", None),
            ("0g", None),
            ("+1", None),
            ("é1", None),
        ];
        for (text, want) in cases {
            assert_eq!(decode(text).as_deref(), want, "{text:?}");
        }
        assert_eq!(encode(&[0x00, 0xab, 0x10]), "00ab10");
    }
}
