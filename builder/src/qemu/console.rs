//! Serial console text: splitting the byte stream into lines, removing terminal control
//! sequences (OVMF and the UEFI shell draw with ANSI escapes), and a size-capped log.

/// Longest console line kept whole; a guest printing more without a newline gets it cut.
pub(crate) const MAX_LINE: usize = 64 << 10;

/// Splits a byte stream into lines. Bytes after the last newline stay pending.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Appends `bytes` and returns every line it completed, cleaned with [`clean_line`].
    /// Text longer than [`MAX_LINE`] without a newline is cut into a line of its own.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            lines.push(clean_line(&self.pending[start..start + pos]));
            start += pos + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            lines.push(clean_line(&std::mem::take(&mut self.pending)));
        }
        lines
    }

    /// The cleaned text after the last newline (a prompt, or a line still being written).
    pub(crate) fn pending(&self) -> String {
        clean_line(&self.pending)
    }

    /// Takes the pending text at end of stream; `None` when nothing is pending.
    pub(crate) fn finish(&mut self) -> Option<String> {
        let line = clean_line(&std::mem::take(&mut self.pending));
        (!line.is_empty()).then_some(line)
    }
}

/// Decodes `raw` lossily and removes ANSI escape sequences (CSI `ESC [ … final`, and
/// two-byte `ESC x`), carriage returns and other control characters except tab.
pub(crate) fn clean_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            // ESC x drops x; for CSI (ESC [) also the parameters up to the final byte in @..~.
            '\x1b' => {
                if chars.next() == Some('[') {
                    chars.by_ref().find(|p| ('@'..='~').contains(p));
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Console lines kept in memory, capped at [`LOG_CAP`] bytes so a guest that floods the
/// serial port cannot exhaust memory; once full, later lines are counted, not kept.
#[derive(Debug, Default)]
pub(crate) struct ConsoleLog {
    text: String,
    dropped_lines: usize,
}

/// Largest console log kept in memory.
pub(crate) const LOG_CAP: usize = 16 << 20;

impl ConsoleLog {
    /// Appends one line (a newline is added).
    pub(crate) fn push(&mut self, line: &str) {
        if self.dropped_lines == 0 && self.text.len() + line.len() < LOG_CAP {
            self.text.push_str(line);
            self.text.push('\n');
        } else {
            self.dropped_lines += 1;
        }
    }

    /// The log text, with a final note when lines were dropped.
    pub(crate) fn into_text(mut self) -> String {
        if self.dropped_lines > 0 {
            let note = format!(
                "[nodeimg: {} more console lines not kept]\n",
                self.dropped_lines
            );
            self.text.push_str(&note);
        }
        self.text
    }
}

/// The last `n` lines of `log`.
pub fn tail_lines(log: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_line_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain", "plain"),
            (b"with cr\r", "with cr"),
            (b"\x1b[2J\x1b[01;01HUEFI Shell", "UEFI Shell"),
            (b"\x1b[1m\x1b[33m\x1b[40mShell> \x1b[0m", "Shell> "),
            (b"\x1b[=3hmode", "mode"),
            (b"a\tb", "a\tb"),
            (b"bell\x07", "bell"),
            (b"\x1bcreset", "reset"),
            (b"truncated \x1b[1", "truncated "),
            (b"trailing esc \x1b", "trailing esc "),
            (b"bad utf8 \xff!", "bad utf8 \u{fffd}!"),
        ];
        for (raw, want) in cases {
            assert_eq!(clean_line(raw), *want, "input {raw:?}");
        }
    }

    #[test]
    fn splitter_keeps_partial_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"one\r\ntw"), vec!["one"]);
        assert_eq!(s.pending(), "tw");
        assert_eq!(s.push(b"o\nthree\nfour"), vec!["two", "three"]);
        assert_eq!(s.push(b""), Vec::<String>::new());
        assert_eq!(s.finish().as_deref(), Some("four"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn overlong_lines_are_cut() {
        let mut s = LineSplitter::default();
        assert!(s.push(&vec![b'x'; MAX_LINE]).is_empty());
        let lines = s.push(b"yy");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE + 2);
        assert_eq!(s.pending(), "");
    }

    #[test]
    fn log_is_capped() {
        let mut log = ConsoleLog::default();
        let big = "x".repeat(LOG_CAP / 2);
        log.push(&big);
        log.push(&big);
        log.push("small");
        let text = log.into_text();
        assert!(text.len() < LOG_CAP + 100);
        assert!(
            text.ends_with("[nodeimg: 2 more console lines not kept]\n"),
            "{}",
            &text[text.len() - 60..]
        );
    }

    #[test]
    fn tail_lines_table() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), vec!["b", "c"]);
        assert_eq!(tail_lines("a\nb", 5), vec!["a", "b"]);
        assert!(tail_lines("", 3).is_empty());
    }
}
