//! The SEV-SNP guest policy (`POLICY`, SNP ABI spec §4.3 "Guest Policy"): what the PSP lets
//! the hypervisor do with a guest. It is chosen at `SNP_LAUNCH_START`, reported in every
//! attestation report and, with an ID block, signed by the image owner.
//!
//! | bits  | field               | 1 means                                                    |
//! |-------|---------------------|------------------------------------------------------------|
//! | 7:0   | `ABI_MINOR`         | minimum firmware ABI minor version                          |
//! | 15:8  | `ABI_MAJOR`         | minimum firmware ABI major version                          |
//! | 16    | `SMT`               | the host may run with SMT enabled                           |
//! | 17    | reserved            | **must be 1**                                               |
//! | 18    | `MIGRATE_MA`        | a migration agent may be associated                         |
//! | 19    | `DEBUG`             | the hypervisor may debug (decrypt) the guest                |
//! | 20    | `SINGLE_SOCKET`     | the guest may only run on one socket                        |
//! | 21    | `CXL_ALLOW`         | CXL devices or memory may be populated                      |
//! | 22    | `MEM_AES_256_XTS`   | AES-256-XTS memory encryption is required                   |
//! | 23    | `RAPL_DIS`          | RAPL must be disabled                                       |
//! | 24    | `CIPHERTEXT_HIDING` | ciphertext hiding must be enabled                           |
//! | 25    | `PAGE_SWAP_DISABLE` | SNP_PAGE_MOVE / SWAP_OUT / SWAP_IN are refused              |
//! | 63:26 | reserved            | must be 0                                                   |
//!
//! The layout is the current SEV-SNP ABI's, as virtee/sev 6.3's `GuestPolicy` has it
//! (`PAGE_SWAP_DISABLE`, bit 25, is the newest; older firmware refuses it). Bits 26 and up are
//! refused: a firmware that does not know a bit refuses the launch anyway, and a bit a later
//! ABI defines deserves a name here before nodeimg signs it.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Bit 17: reserved, must be one.
pub const RESERVED_ONE: u64 = 1 << 17;
/// Bits 26 to 63: reserved, must be zero.
pub const RESERVED_ZERO: u64 = !((1 << 26) - 1);

/// The single-bit fields by name (the spelling of the CLI, the config and the docs).
pub const FLAGS: [(&str, u32); 9] = [
    ("smt", 16),
    ("migrate-ma", 18),
    ("debug", 19),
    ("single-socket", 20),
    ("cxl-allow", 21),
    ("mem-aes-256-xts", 22),
    ("rapl-dis", 23),
    ("ciphertext-hiding", 24),
    ("page-swap-disable", 25),
];

/// Why a policy value or spelling was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// Bit 17 is clear.
    #[error("guest policy {0:#x}: bit 17 is reserved and must be 1 (SEV-SNP ABI); use {1:#x}")]
    ReservedOneClear(u64, u64),
    /// A reserved bit above 25 is set.
    #[error(
        "guest policy {value:#x}: reserved bits {bits:#x} set (bits 26-63 must be 0; the \
         SEV-SNP ABI defines bits 0-25)"
    )]
    ReservedSet {
        /// The whole value.
        value: u64,
        /// The offending bits.
        bits: u64,
    },
    /// A spelling that is neither a number nor a list of field names.
    #[error(
        "guest policy `{text}`: {why}; write a number (0x30000) or fields like \
         `smt,abi-major=1,abi-minor=51` (fields: {names}, abi-major=N, abi-minor=N)",
        names = FLAGS.map(|f| f.0).join(", ")
    )]
    Syntax {
        /// The input.
        text: String,
        /// What is wrong with it.
        why: String,
    },
}

/// A guest policy with bit 17 set and no reserved bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnpPolicy(u64);

impl Default for SnpPolicy {
    /// `0x30000`: SMT allowed, no debugging, no migration agent, any ABI version — the
    /// default of QEMU's `sev-snp-guest` and of sev-snp-measure's ID blocks.
    fn default() -> Self {
        SnpPolicy(0x30000)
    }
}

impl SnpPolicy {
    /// Checks the reserved bits of `value`.
    pub fn new(value: u64) -> Result<SnpPolicy, PolicyError> {
        if value & RESERVED_ZERO != 0 {
            return Err(PolicyError::ReservedSet {
                value,
                bits: value & RESERVED_ZERO,
            });
        }
        if value & RESERVED_ONE == 0 {
            return Err(PolicyError::ReservedOneClear(value, value | RESERVED_ONE));
        }
        Ok(SnpPolicy(value))
    }

    /// The policy with the named single-bit fields set (bit 17 always) and the ABI minimum.
    /// Unknown names are an error.
    pub fn from_fields<'a>(
        flags: impl IntoIterator<Item = &'a str>,
        abi_major: u8,
        abi_minor: u8,
    ) -> Result<SnpPolicy, PolicyError> {
        let mut v = RESERVED_ONE | u64::from(abi_major) << 8 | u64::from(abi_minor);
        for name in flags {
            let bit = FLAGS
                .iter()
                .find(|f| f.0 == name)
                .ok_or_else(|| PolicyError::Syntax {
                    text: name.to_string(),
                    why: "unknown field".into(),
                })?
                .1;
            v |= 1 << bit;
        }
        SnpPolicy::new(v)
    }

    /// The 64-bit value.
    pub fn value(self) -> u64 {
        self.0
    }

    /// Whether the named single-bit field is set (`false` for unknown names).
    pub fn flag(self, name: &str) -> bool {
        FLAGS
            .iter()
            .any(|&(n, bit)| n == name && self.0 & 1 << bit != 0)
    }

    /// Minimum ABI version (major, minor).
    pub fn abi(self) -> (u8, u8) {
        ((self.0 >> 8) as u8, self.0 as u8)
    }

    /// The set single-bit fields by name, in bit order.
    pub fn flags(self) -> Vec<&'static str> {
        FLAGS
            .iter()
            .filter(|&&(_, bit)| self.0 & 1 << bit != 0)
            .map(|f| f.0)
            .collect()
    }

    /// The fields for people: `smt, abi >= 0.0`.
    pub fn describe(self) -> String {
        let (major, minor) = self.abi();
        let mut parts = self.flags();
        let abi = format!("abi >= {major}.{minor}");
        parts.push(&abi);
        parts.join(", ")
    }
}

impl fmt::Display for SnpPolicy {
    /// Lowercase hex with `0x`, as QEMU's `policy=` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl FromStr for SnpPolicy {
    type Err = PolicyError;

    /// A number (`0x30000`, `196608`) or comma-separated fields (`smt,abi-major=1`; the
    /// empty string is the strictest policy, `0x20000`).
    fn from_str(s: &str) -> Result<SnpPolicy, PolicyError> {
        let t = s.trim();
        let syntax = |why: String| PolicyError::Syntax {
            text: s.to_string(),
            why,
        };
        if t.starts_with(|c: char| c.is_ascii_digit()) {
            let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16),
                None => t.parse::<u64>(),
            }
            .map_err(|e| syntax(format!("not a 64-bit number ({e})")))?;
            return SnpPolicy::new(v);
        }
        let (mut major, mut minor) = (0u8, 0u8);
        let mut flags = Vec::new();
        for part in t.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k @ ("abi-major" | "abi-minor"), v)) => {
                    let n = v
                        .trim()
                        .parse::<u8>()
                        .map_err(|_| syntax(format!("{k}={v}: expected 0 to 255")))?;
                    *(if k == "abi-major" {
                        &mut major
                    } else {
                        &mut minor
                    }) = n;
                }
                Some((k, _)) => return Err(syntax(format!("unknown field `{k}`"))),
                None if FLAGS.iter().any(|f| f.0 == part) => flags.push(part),
                None => return Err(syntax(format!("unknown field `{part}`"))),
            }
        }
        SnpPolicy::from_fields(flags, major, minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        for (s, want) in [
            ("0x30000", 0x30000),
            ("196608", 0x30000),
            ("smt", 0x30000),
            ("", 0x20000),
            ("smt, abi-major=1,abi-minor=51", 0x30133),
            ("debug,migrate-ma", 0xe0000),
            ("page-swap-disable", 0x2020000),
        ] {
            assert_eq!(
                s.parse::<SnpPolicy>().map(SnpPolicy::value),
                Ok(want),
                "{s}"
            );
        }
        let p: SnpPolicy = "smt,single-socket,abi-major=1".parse().unwrap();
        assert_eq!(p.describe(), "smt, single-socket, abi >= 1.0");
        assert!(p.flag("smt") && !p.flag("debug"));
        assert_eq!(p.to_string(), "0x130100");
        assert_eq!(SnpPolicy::default().to_string(), "0x30000");
    }

    #[test]
    fn reserved_bits_and_bad_spellings_are_refused() {
        let e = "0x10000".parse::<SnpPolicy>().unwrap_err().to_string();
        assert!(
            e.contains("bit 17 is reserved and must be 1") && e.contains("0x30000"),
            "{e}"
        );
        let e = "0x4030000".parse::<SnpPolicy>().unwrap_err().to_string();
        assert!(e.contains("reserved bits 0x4000000"), "{e}");
        assert!(SnpPolicy::new(1 << 63 | RESERVED_ONE).is_err());
        assert!(SnpPolicy::new(0x3ff_ffff).is_ok());
        for (s, want) in [
            ("smt,debg", "unknown field `debg`"),
            ("abi-major=256", "expected 0 to 255"),
            ("0x1_0000_0000_0000_0000", "not a 64-bit number"),
            ("0xzz", "not a 64-bit number"),
            ("smt=1", "unknown field `smt`"),
        ] {
            let e = s.parse::<SnpPolicy>().unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
