//! What the init reports about the TPM on the console: the `NODEIMG-PCRS {json}` line with the
//! PCR values sysfs exposes, and the firmware's TCG event log as framed base64 lines
//! (`docs/boot-protocol.md`): `NODEIMG-EVENTLOG-BEGIN <bytes>`, `NODEIMG-EVENTLOG <seq> <base64>`
//! (one per chunk of [`EVENTLOG_CHUNK`] bytes), `NODEIMG-EVENTLOG-END <sha256 hex>`; or one
//! `NODEIMG-EVENTLOG-NONE <why>` line when there is no log to send.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::sys;

/// Where the first TPM's PCR banks appear (`pcr-<bank>/<index>`).
pub const TPM_SYSFS: &str = "/sys/class/tpm/tpm0";

/// PCRs 0 to 15 are reported.
pub const PCR_COUNT: u32 = 16;

/// Bank name → PCR index → lower-case hex digest.
pub type Banks = BTreeMap<String, BTreeMap<u32, String>>;

/// Formats `NODEIMG-PCRS {"sha256":{"0":"…",…},…}` (banks by name, PCRs by index).
pub fn format_line(banks: &Banks) -> String {
    let body: Vec<String> = banks
        .iter()
        .filter(|(bank, pcrs)| valid_bank_name(bank) && !pcrs.is_empty())
        .map(|(bank, pcrs)| {
            let items: Vec<String> = pcrs
                .iter()
                .map(|(i, hex)| format!("\"{i}\":\"{hex}\""))
                .collect();
            format!("\"{bank}\":{{{}}}", items.join(","))
        })
        .collect();
    format!("NODEIMG-PCRS {{{}}}", body.join(","))
}

/// Bank names are JSON-safe identifiers such as `sha256` or `sm3_256`.
pub fn valid_bank_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Normalises a sysfs PCR value (upper-case hex + newline) to lower-case hex.
///
/// `None` when it is not hex or has the wrong length for a known bank.
pub fn normalize_value(bank: &str, text: &str) -> Option<String> {
    let hex = text.trim().to_ascii_lowercase();
    let want = match bank {
        "sha1" => Some(40),
        "sha256" | "sm3_256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    };
    let ok_len = want.map_or(!hex.is_empty() && hex.len().is_multiple_of(2), |n| {
        hex.len() == n
    });
    (ok_len && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Reads every `pcr-<bank>/<0..15>` under `tpm_dir`; missing banks or PCRs are left out.
pub fn read_banks(tpm_dir: &Path) -> Banks {
    let mut banks = Banks::new();
    let Ok(dir) = fs::read_dir(tpm_dir) else {
        return banks;
    };
    for entry in dir.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(bank) = name.strip_prefix("pcr-") else {
            continue;
        };
        if !valid_bank_name(bank) {
            continue;
        }
        let pcrs: BTreeMap<u32, String> = (0..PCR_COUNT)
            .filter_map(|i| {
                let text = fs::read_to_string(entry.path().join(i.to_string())).ok()?;
                Some((i, normalize_value(bank, &text)?))
            })
            .collect();
        if !pcrs.is_empty() {
            banks.insert(bank.to_string(), pcrs);
        }
    }
    banks
}

/// Where securityfs is mounted; the TPM event log is `tpm0/binary_bios_measurements` below it.
pub const SECURITYFS: &str = "/sys/kernel/security";
/// The firmware event log (TCG crypto-agile format) relative to [`SECURITYFS`].
pub const EVENTLOG_FILE: &str = "tpm0/binary_bios_measurements";
/// Raw bytes per `NODEIMG-EVENTLOG` line (1024 base64 characters).
pub const EVENTLOG_CHUNK: usize = 768;
/// A log larger than this is not sent (real firmware logs are tens of KiB).
pub const EVENTLOG_MAX: usize = 4 << 20;

/// The framed console lines that carry `log`.
pub fn eventlog_lines(log: &[u8]) -> Vec<String> {
    let mut lines = vec![format!("NODEIMG-EVENTLOG-BEGIN {}", log.len())];
    lines.extend(
        log.chunks(EVENTLOG_CHUNK)
            .enumerate()
            .map(|(i, chunk)| format!("NODEIMG-EVENTLOG {i} {}", base64(chunk))),
    );
    let digest = Sha256::digest(log);
    lines.push(format!(
        "NODEIMG-EVENTLOG-END {}",
        crate::hex::encode(&digest)
    ));
    lines
}

/// The line sent instead of a log.
pub fn eventlog_none_line(why: &str) -> String {
    format!("NODEIMG-EVENTLOG-NONE {why}")
}

/// Reads the firmware event log: mounts securityfs (unless already mounted), reads
/// [`EVENTLOG_FILE`] and unmounts again if it mounted. The error says why there is no log.
pub fn read_event_log() -> Result<Vec<u8>, String> {
    if !Path::new(TPM_SYSFS).exists() {
        return Err("no TPM".into());
    }
    let dir = Path::new(SECURITYFS);
    let mounted = match sys::mount("securityfs", dir, Some("securityfs"), 0, None) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => false,
        Err(e) => return Err(format!("mounting securityfs on {SECURITYFS}: {e}")),
    };
    let path = dir.join(EVENTLOG_FILE);
    let read = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()));
    if mounted {
        let _ = sys::umount2(dir, 0);
    }
    let log = read?;
    if log.len() > EVENTLOG_MAX {
        return Err(format!(
            "{} holds {} bytes, more than the {EVENTLOG_MAX} sent",
            path.display(),
            log.len()
        ));
    }
    Ok(log)
}

/// Standard base64 (RFC 4648, with `=` padding).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn banks(items: &[(&str, u32, &str)]) -> Banks {
        let mut b = Banks::new();
        for (bank, i, hex) in items {
            b.entry(bank.to_string())
                .or_default()
                .insert(*i, hex.to_string());
        }
        b
    }

    #[test]
    fn formats_the_line() {
        let z64 = "0".repeat(64);
        let cases = [
            (banks(&[]), "NODEIMG-PCRS {}".to_string()),
            (
                banks(&[("sha256", 10, "ab"), ("sha256", 2, "cd"), ("sha1", 0, "ef")]),
                r#"NODEIMG-PCRS {"sha1":{"0":"ef"},"sha256":{"2":"cd","10":"ab"}}"#.to_string(),
            ),
            (
                banks(&[("sha384", 15, &z64)]),
                format!(r#"NODEIMG-PCRS {{"sha384":{{"15":"{z64}"}}}}"#),
            ),
            (
                banks(&[("bad\"name", 0, "00")]),
                "NODEIMG-PCRS {}".to_string(),
            ),
        ];
        for (b, want) in cases {
            assert_eq!(format_line(&b), want);
        }
    }

    #[test]
    fn normalizes_sysfs_values() {
        let up = "AB".repeat(32);
        let cases = [
            ("sha256", format!("{up}\n"), Some("ab".repeat(32))),
            ("sha256", "AB\n".to_string(), None),
            ("sha1", "0".repeat(40), Some("0".repeat(40))),
            ("sha384", "0".repeat(64), None),
            ("sha512", "0".repeat(128), Some("0".repeat(128))),
            ("sha256", "G".repeat(64), None),
            ("future", "abcd".to_string(), Some("abcd".to_string())),
            ("future", "abc".to_string(), None),
            ("future", String::new(), None),
        ];
        for (bank, text, want) in cases {
            assert_eq!(normalize_value(bank, &text), want, "{bank} {text:?}");
        }
    }

    #[test]
    fn reads_a_fake_sysfs_tree() {
        let dir = std::env::temp_dir().join(format!("nodeimg-init-pcr-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("pcr-sha256")).unwrap();
        fs::create_dir_all(dir.join("pcr-sha1")).unwrap(); // empty bank: omitted
        fs::create_dir_all(dir.join("pcr-BAD")).unwrap();
        fs::write(dir.join("pcr-sha256/0"), format!("{}\n", "A1".repeat(32))).unwrap();
        fs::write(dir.join("pcr-sha256/16"), format!("{}\n", "00".repeat(32))).unwrap(); // not 0-15
        fs::write(dir.join("pcr-sha256/7"), "junk\n").unwrap();
        fs::write(dir.join("pcr-BAD/0"), format!("{}\n", "00".repeat(32))).unwrap();
        let got = read_banks(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, banks(&[("sha256", 0, &"a1".repeat(32))]));
        assert_eq!(read_banks(Path::new("/nonexistent/tpm0")), Banks::new());
    }

    #[test]
    fn base64_rfc4648_vectors() {
        // RFC 4648 section 10.
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (raw, want) in cases {
            assert_eq!(base64(raw.as_bytes()), want);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn eventlog_framing() {
        let log: Vec<u8> = (0..(EVENTLOG_CHUNK * 2 + 5)).map(|i| i as u8).collect();
        let lines = eventlog_lines(&log);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], format!("NODEIMG-EVENTLOG-BEGIN {}", log.len()));
        assert!(lines[1].starts_with("NODEIMG-EVENTLOG 0 "));
        assert_eq!(lines[1].len(), "NODEIMG-EVENTLOG 0 ".len() + 1024);
        assert_eq!(
            lines[3],
            format!("NODEIMG-EVENTLOG 2 {}", base64(&log[1536..]))
        );
        // The END digest of an empty log is `sha256sum </dev/null`.
        let empty = eventlog_lines(&[]);
        assert_eq!(
            empty,
            [
                "NODEIMG-EVENTLOG-BEGIN 0",
                "NODEIMG-EVENTLOG-END e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            ]
        );
        assert_eq!(eventlog_none_line("no TPM"), "NODEIMG-EVENTLOG-NONE no TPM");
    }
}
