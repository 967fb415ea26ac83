//! The PCR values a booted image reports: nodeimg-init prints one console line
//! `NODEIMG-PCRS {"sha256":{"4":"<hex>",…},"sha384":{…}}` before it switches root
//! (the line may carry a kernel-log prefix such as `[    1.234567] `).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// The marker that starts the JSON on a PCR line.
pub const PCRS_MARKER: &str = "NODEIMG-PCRS ";

/// PCR values by bank (`"sha256"`, `"sha384"`, …) and PCR index, as lowercase hex.
/// Serializes like the manifest's `pcrs` object: PCR keys as decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ObservedPcrs(pub BTreeMap<String, BTreeMap<u32, String>>);

impl ObservedPcrs {
    /// The value of PCR `index` in `bank`, if reported.
    pub fn get(&self, bank: &str, index: u32) -> Option<&str> {
        self.0.get(bank)?.get(&index).map(String::as_str)
    }

    /// Finds the last `NODEIMG-PCRS` line in a console log and parses it. `Ok(None)` when
    /// there is no such line; an error when the line is malformed.
    pub fn from_log(log: &str) -> Result<Option<Self>> {
        let Some((n, json)) = log
            .lines()
            .enumerate()
            .filter_map(|(n, line)| {
                line.find(PCRS_MARKER)
                    .map(|at| (n, &line[at + PCRS_MARKER.len()..]))
            })
            .last()
        else {
            return Ok(None);
        };
        Self::parse_json(json)
            .with_context(|| {
                format!(
                    "parsing the {} line (console line {})",
                    PCRS_MARKER.trim(),
                    n + 1
                )
            })
            .map(Some)
    }

    /// Parses and checks the JSON object: known banks, PCR keys 0–23 in canonical decimal,
    /// values lowercase hex of the bank's digest size.
    pub fn parse_json(json: &str) -> Result<Self> {
        let raw: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(json.trim())
            .context("expected {\"<bank>\": {\"<pcr>\": \"<hex>\"}}")?;
        let mut banks = BTreeMap::new();
        for (bank, values) in raw {
            let size = digest_size(&bank).with_context(|| {
                format!(
                    "unknown PCR bank {bank:?} (expected sha1, sha256, sha384, sha512 or sm3_256)"
                )
            })?;
            let mut pcrs = BTreeMap::new();
            for (key, value) in values {
                let index = parse_index(&key).with_context(|| format!("bank {bank}"))?;
                check_hex(&value, size).with_context(|| format!("bank {bank}, PCR {key}"))?;
                pcrs.insert(index, value);
            }
            banks.insert(bank, pcrs);
        }
        Ok(Self(banks))
    }
}

/// Digest size in bytes of a TPM bank name.
fn digest_size(bank: &str) -> Option<usize> {
    match bank {
        "sha1" => Some(20),
        "sha256" | "sm3_256" => Some(32),
        "sha384" => Some(48),
        "sha512" => Some(64),
        _ => None,
    }
}

/// A PCR key: decimal without sign or leading zeros, 0–23.
fn parse_index(key: &str) -> Result<u32> {
    let canonical = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'));
    match key.parse::<u32>() {
        Ok(i) if canonical && i <= 23 => Ok(i),
        _ => bail!("PCR key {key:?} is not a decimal index 0-23"),
    }
}

/// `value` must be `size` bytes as lowercase hex.
fn check_hex(value: &str, size: usize) -> Result<()> {
    if value.len() != size * 2 {
        bail!(
            "value has {} hex digits, expected {}",
            value.len(),
            size * 2
        );
    }
    if !value
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        bail!("value {value:?} is not lowercase hex");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(byte: &str, size: usize) -> String {
        byte.repeat(size)
    }

    #[test]
    fn parses_line_with_kernel_prefix() {
        let line = format!(
            "[    2.5] NODEIMG-PCRS {{\"sha256\":{{\"4\":\"{}\",\"11\":\"{}\"}},\"sha384\":{{\"4\":\"{}\"}}}}",
            hex("ab", 32),
            hex("00", 32),
            hex("cd", 48)
        );
        let log = format!("boot\n{line}\nmore\n");
        let pcrs = ObservedPcrs::from_log(&log).unwrap().unwrap();
        assert_eq!(pcrs.get("sha256", 4), Some(hex("ab", 32).as_str()));
        assert_eq!(pcrs.get("sha256", 11), Some(hex("00", 32).as_str()));
        assert_eq!(pcrs.get("sha384", 4), Some(hex("cd", 48).as_str()));
        assert_eq!(pcrs.get("sha384", 11), None);
        // Serializes back with decimal-string keys in numeric order.
        let json = serde_json::to_string(&pcrs).unwrap();
        assert!(
            json.starts_with(&format!(
                "{{\"sha256\":{{\"4\":\"{}\",\"11\"",
                hex("ab", 32)
            )),
            "{json}"
        );
    }

    #[test]
    fn no_line_is_none_and_last_line_wins() {
        assert_eq!(ObservedPcrs::from_log("nothing here\n").unwrap(), None);
        let log = format!(
            "NODEIMG-PCRS {{\"sha256\":{{\"0\":\"{}\"}}}}\nNODEIMG-PCRS {{\"sha256\":{{\"0\":\"{}\"}}}}\n",
            hex("11", 32),
            hex("22", 32)
        );
        let pcrs = ObservedPcrs::from_log(&log).unwrap().unwrap();
        assert_eq!(pcrs.get("sha256", 0), Some(hex("22", 32).as_str()));
    }

    #[test]
    fn rejects_malformed_json() {
        let cases = [
            ("not json", "expected"),
            ("{\"md5\":{}}", "unknown PCR bank"),
            (
                &*format!("{{\"sha256\":{{\"24\":\"{}\"}}}}", hex("00", 32)),
                "0-23",
            ),
            (
                &*format!("{{\"sha256\":{{\"04\":\"{}\"}}}}", hex("00", 32)),
                "0-23",
            ),
            (
                &*format!("{{\"sha256\":{{\"-1\":\"{}\"}}}}", hex("00", 32)),
                "0-23",
            ),
            (
                &*format!("{{\"sha256\":{{\"4\":\"{}\"}}}}", hex("00", 31)),
                "62 hex digits",
            ),
            (
                &*format!("{{\"sha256\":{{\"4\":\"{}\"}}}}", hex("AB", 32)),
                "lowercase hex",
            ),
            (
                &*format!("{{\"sha384\":{{\"4\":\"{}\"}}}}", hex("00", 32)),
                "expected 96",
            ),
        ];
        for (json, want) in cases {
            let err = format!("{:#}", ObservedPcrs::parse_json(json).unwrap_err());
            assert!(err.contains(want), "{json}: {err}");
        }
        let err = ObservedPcrs::from_log("x\nNODEIMG-PCRS {broken\n").unwrap_err();
        assert!(format!("{err:#}").contains("console line 2"), "{err:#}");
    }
}
