//! The `NODEIMG-PCRS {json}` console line with the PCR values sysfs exposes.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

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
    let ok_len = want.map_or(!hex.is_empty() && hex.len() % 2 == 0, |n| hex.len() == n);
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
}
