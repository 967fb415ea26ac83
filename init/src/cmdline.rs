//! The kernel command line parameters the init reads.

use std::fmt;
use std::time::Duration;

use crate::guid::Guid;

/// Default `nodeimg.rootwait=`: how long to wait for the partitions to appear.
pub const DEFAULT_ROOTWAIT: Duration = Duration::from_secs(15);

/// Largest accepted `nodeimg.rootwait=` in seconds.
const MAX_ROOTWAIT_SECS: u64 = 3600;

/// A SHA-256 dm-verity root hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootHash(pub [u8; 32]);

impl RootHash {
    /// Parses exactly 64 hex digits (either case).
    pub fn parse(text: &str) -> Option<RootHash> {
        if text.len() != 64 {
            return None;
        }
        crate::hex::decode(text)?.try_into().ok().map(RootHash)
    }

    /// PARTUUID of the data (erofs) partition: the first 128 bits, in text order.
    pub fn data_partuuid(&self) -> Guid {
        Guid(half(&self.0, 0))
    }

    /// PARTUUID of the verity (hash tree) partition: the last 128 bits, in text order.
    pub fn verity_partuuid(&self) -> Guid {
        Guid(half(&self.0, 16))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

fn half(bytes: &[u8; 32], start: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&bytes[start..start + 16]);
    out
}

/// Parameters taken from `/proc/cmdline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdline {
    /// `roothash=` (required).
    pub roothash: RootHash,
    /// `nodeimg.rootwait=` in seconds (default [`DEFAULT_ROOTWAIT`]).
    pub rootwait: Duration,
}

/// A command line problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineError(pub String);

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CmdlineError {}

/// Parses the command line; the last occurrence of a parameter wins, as in the kernel.
pub fn parse(text: &str) -> Result<Cmdline, CmdlineError> {
    let mut roothash = None;
    let mut rootwait = None;
    for word in split_words(text) {
        if word == "--" {
            break; // the rest belongs to init
        }
        if let Some(value) = word.strip_prefix("roothash=") {
            roothash = Some(value.to_string());
        } else if let Some(value) = word.strip_prefix("nodeimg.rootwait=") {
            rootwait = Some(value.to_string());
        }
    }
    let value = roothash.ok_or_else(|| CmdlineError("no roothash= parameter".into()))?;
    let roothash = RootHash::parse(&value).ok_or_else(|| {
        CmdlineError(format!(
            "roothash={value}: expected 64 hex digits (SHA-256)"
        ))
    })?;
    let rootwait = match rootwait {
        Some(v) => parse_rootwait(&v)?,
        None => DEFAULT_ROOTWAIT,
    };
    Ok(Cmdline { roothash, rootwait })
}

fn parse_rootwait(value: &str) -> Result<Duration, CmdlineError> {
    match value.parse::<u64>() {
        Ok(secs) if secs <= MAX_ROOTWAIT_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(CmdlineError(format!(
            "nodeimg.rootwait={value}: expected whole seconds 0..={MAX_ROOTWAIT_SECS}"
        ))),
    }
}

/// Splits like the kernel's `next_arg`: whitespace separates, double quotes group and are removed.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has_word = false;
    for c in text.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_word {
                    words.push(std::mem::take(&mut cur));
                    has_word = false;
                }
            }
            c => {
                cur.push(c);
                has_word = true;
            }
        }
    }
    if has_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    const RH: &str = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";

    #[test]
    fn parses_roothash_and_rootwait() {
        let cases = [
            (format!("console=ttyS0 roothash={RH} quiet\n"), 15),
            (
                format!("roothash={} nodeimg.rootwait=3", RH.to_uppercase()),
                3,
            ),
            (format!("roothash=bad roothash={RH} nodeimg.rootwait=0"), 0),
            (format!("a=\"x y\" roothash={RH} -- roothash=zz"), 15),
        ];
        for (text, wait) in cases {
            let c = parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(c.roothash.to_hex(), RH);
            assert_eq!(c.rootwait, Duration::from_secs(wait), "{text:?}");
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        let cases = [
            (String::new(), "no roothash"),
            ("root=/dev/vda".to_string(), "no roothash"),
            (format!("roothash={RH} roothash=abc"), "64 hex digits"),
            (format!("roothash={}0", RH), "64 hex digits"),
            (
                format!("roothash={}", RH.replace('0', "g")),
                "64 hex digits",
            ),
            (
                format!("roothash={RH} nodeimg.rootwait=-1"),
                "whole seconds",
            ),
            (
                format!("roothash={RH} nodeimg.rootwait=1.5"),
                "whole seconds",
            ),
            (
                format!("roothash={RH} nodeimg.rootwait=3601"),
                "whole seconds",
            ),
            (format!("-- roothash={RH}"), "no roothash"),
        ];
        for (text, needle) in cases {
            let err = parse(&text).expect_err(&text);
            assert!(err.to_string().contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn partuuids_are_the_two_halves_in_text_order() {
        let rh = RootHash::parse(RH).unwrap();
        assert_eq!(
            rh.data_partuuid().to_string(),
            "00112233-4455-6677-8899-aabbccddeeff"
        );
        assert_eq!(
            rh.verity_partuuid().to_string(),
            "01234567-89ab-cdef-fedc-ba9876543210"
        );
    }

    #[test]
    fn splits_words_like_the_kernel() {
        let cases: [(&str, &[&str]); 5] = [
            ("", &[]),
            ("  a  b\tc\n", &["a", "b", "c"]),
            ("x=\"1 2\" y", &["x=1 2", "y"]),
            ("\"\" z", &["", "z"]),
            ("\"unterminated tail", &["unterminated tail"]),
        ];
        for (text, want) in cases {
            assert_eq!(split_words(text), want, "{text:?}");
        }
    }
}
