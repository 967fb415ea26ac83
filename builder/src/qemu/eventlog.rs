//! The firmware event log a booted image sends over the console (`docs/boot-protocol.md`):
//! nodeimg-init prints `NODEIMG-EVENTLOG-BEGIN <bytes>`, then `NODEIMG-EVENTLOG <seq> <base64>`
//! lines numbered from 0, then `NODEIMG-EVENTLOG-END <sha256 hex>`; or one
//! `NODEIMG-EVENTLOG-NONE <why>` line. Lines may carry a kernel-log prefix and kernel messages
//! may come in between; the reassembled bytes must match the length and the SHA-256.

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

/// Marker of the first line.
pub const BEGIN: &str = "NODEIMG-EVENTLOG-BEGIN ";
/// Marker of a data line.
pub const CHUNK: &str = "NODEIMG-EVENTLOG ";
/// Marker of the last line.
pub const END: &str = "NODEIMG-EVENTLOG-END ";
/// Marker of the line sent instead of a log.
pub const NONE: &str = "NODEIMG-EVENTLOG-NONE ";

/// What the guest sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEventLog {
    /// The log bytes (TCG crypto-agile format).
    Log(Vec<u8>),
    /// The guest had no log to send, and said why.
    Unavailable(String),
}

/// Whether `line` ends the event-log transfer (an END or NONE line).
pub fn is_final_line(line: &str) -> bool {
    line.contains(END) || line.contains(NONE)
}

/// Reassembles the last transfer in `log`; `Ok(None)` when the console has no BEGIN or NONE
/// line. Errors say which line is wrong.
pub fn from_console(log: &str) -> Result<Option<GuestEventLog>> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.contains(BEGIN) || l.contains(NONE));
    let Some(start) = start else {
        return Ok(None);
    };
    if let Some(why) = after(lines[start], NONE) {
        return Ok(Some(GuestEventLog::Unavailable(why.trim().to_string())));
    }
    let at = |n: usize| format!("console line {}", n + 1);
    let len: usize = after(lines[start], BEGIN)
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("{}: expected `{BEGIN}<bytes>`", at(start)))?;
    let mut data = Vec::with_capacity(len);
    let mut next = 0usize;
    for (n, line) in lines.iter().enumerate().skip(start + 1) {
        if let Some(digest) = after(line, END) {
            ensure!(
                data.len() == len,
                "{}: the event log has {} bytes, BEGIN announced {len}",
                at(n),
                data.len()
            );
            let got = hex::encode(Sha256::digest(&data));
            ensure!(
                got == digest.trim(),
                "{}: the event log's sha256 is {got}, END says {}",
                at(n),
                digest.trim()
            );
            return Ok(Some(GuestEventLog::Log(data)));
        }
        let Some(rest) = after(line, CHUNK) else {
            continue;
        };
        let (seq, b64) = rest
            .trim()
            .split_once(' ')
            .with_context(|| format!("{}: expected `{CHUNK}<seq> <base64>`", at(n)))?;
        ensure!(
            seq.parse::<usize>().ok() == Some(next),
            "{}: chunk {seq} where chunk {next} was expected (a console line was lost)",
            at(n)
        );
        data.extend(base64_decode(b64).with_context(|| format!("{}: chunk {seq}", at(n)))?);
        next += 1;
    }
    bail!(
        "the event log transfer starting at {} has no `{}` line (the guest stopped early?)",
        at(start),
        END.trim()
    )
}

/// The text after `marker` in `line`.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

/// Standard base64 with padding (RFC 4648).
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let s = s.as_bytes();
    ensure!(
        s.len().is_multiple_of(4),
        "base64 of length {} (not a multiple of 4)",
        s.len()
    );
    let val = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("invalid base64 character {:?}", char::from(c)),
        }
        .into())
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (i, q) in s.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        ensure!(
            pad <= 2 && (pad == 0 || i == s.len() / 4 - 1),
            "misplaced base64 padding"
        );
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(data: &[u8], chunk: usize) -> Vec<String> {
        // The guest side's framing, re-implemented here (nodeimg-init has its own tests).
        let enc = |d: &[u8]| {
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            d.chunks(3)
                .flat_map(|c| {
                    let n = u32::from(c[0]) << 16
                        | u32::from(*c.get(1).unwrap_or(&0)) << 8
                        | u32::from(*c.get(2).unwrap_or(&0));
                    (0..4).map(move |i| {
                        if i <= c.len() {
                            char::from(A[(n >> (18 - 6 * i) & 63) as usize])
                        } else {
                            '='
                        }
                    })
                })
                .collect::<String>()
        };
        let mut v = vec![format!("{BEGIN}{}", data.len())];
        v.extend(
            data.chunks(chunk)
                .enumerate()
                .map(|(i, c)| format!("{CHUNK}{i} {}", enc(c))),
        );
        v.push(format!("{END}{}", hex::encode(Sha256::digest(data))));
        v
    }

    #[test]
    fn base64_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_decode(enc).unwrap(), raw.as_bytes());
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reassembles_with_prefixes_and_interleaved_kernel_lines() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 256) as u8).collect();
        let mut log = String::from("boot\n");
        for (i, l) in lines(&data, 768).iter().enumerate() {
            log.push_str(&format!("[    1.{i}] {l}\n[    1.{i}] kernel noise\n"));
        }
        assert_eq!(from_console(&log).unwrap(), Some(GuestEventLog::Log(data)));
        assert_eq!(from_console("nothing\n").unwrap(), None);
        assert_eq!(
            from_console("x\nNODEIMG-EVENTLOG-NONE no TPM\n").unwrap(),
            Some(GuestEventLog::Unavailable("no TPM".into()))
        );
    }

    #[test]
    fn damaged_transfers_are_named() {
        let data = vec![7u8; 1600];
        let good = lines(&data, 768);
        let join = |v: &[String]| v.join("\n") + "\n";
        let mut lost = good.clone();
        lost.remove(2);
        let mut wrong_sum = good.clone();
        *wrong_sum.last_mut().unwrap() = format!("{END}{}", "00".repeat(32));
        let mut wrong_len = good.clone();
        wrong_len[0] = format!("{BEGIN}1601");
        let cases = [
            (join(&lost), "chunk 2 where chunk 1 was expected"),
            (join(&wrong_sum), "sha256 is"),
            (join(&wrong_len), "BEGIN announced 1601"),
            (join(&good[..3]), "has no `NODEIMG-EVENTLOG-END` line"),
            (
                "NODEIMG-EVENTLOG-BEGIN x\n".to_string(),
                "expected `NODEIMG-EVENTLOG-BEGIN <bytes>`",
            ),
        ];
        for (log, want) in cases {
            let err = format!("{:#}", from_console(&log).unwrap_err());
            assert!(err.contains(want), "{err}");
        }
        assert!(
            is_final_line("[1] NODEIMG-EVENTLOG-END ab") && !is_final_line("NODEIMG-EVENTLOG 0 x")
        );
    }
}
