//! The `.sbat` section of a UKI, merged the way ukify 257 does it (`merge_sbat`): the SBAT header
//! line, then the stub's entries, the kernel's entries and the user's entries, each source without
//! its own `sbat,` header line, joined by `\n` and terminated by `"\n\0"`.

use anyhow::{Context, Result};
use measurements::pe::Pe;

/// The one header line every SBAT starts with.
pub const SBAT_HEADER: &str =
    "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md";
/// ukify's default user entry for a UKI.
pub const DEFAULT_UKI_SBAT: &str =
    "uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/";

/// Builds the merged `.sbat` text for a UKI from the stub PE, the kernel (if it is a PE with
/// `.sbat` sections) and the user's lines (`None` = [`DEFAULT_UKI_SBAT`]).
///
/// `user` is the text ukify takes with `--sbat`; a leading `sbat,` header line is dropped as
/// ukify does. Unlike ukify, text without that header is used as is (ukify would ignore it).
pub fn merge(stub: &Pe<'_>, kernel: Option<&Pe<'_>>, user: Option<&str>) -> Result<String> {
    let mut lines = pe_lines(stub).context("reading the stub's .sbat")?;
    if let Some(k) = kernel {
        lines.extend(pe_lines(k).context("reading the kernel's .sbat")?);
    }
    let user = user.unwrap_or(DEFAULT_UKI_SBAT);
    let user_lines = splitlines(user);
    let skip = usize::from(user_lines.first().is_some_and(|l| l.starts_with("sbat,")));
    lines.extend(user_lines[skip..].iter().map(|l| l.to_string()));
    Ok(format!("{SBAT_HEADER}\n{}\n\0", lines.join("\n")))
}

/// The entries of every `.sbat` section of `pe`, without their header lines. A section whose
/// first line is not an `sbat,` header is skipped with a warning, as ukify does.
fn pe_lines(pe: &Pe<'_>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in pe.sections.iter().filter(|s| s.name() == b".sbat") {
        // ukify reads SizeOfRawData bytes (clamped to the file) and strips trailing NULs.
        let data = pe.data();
        let start = (s.pointer_to_raw_data as usize).min(data.len());
        let raw = &data[start
            ..start
                .saturating_add(s.size_of_raw_data as usize)
                .min(data.len())];
        let end = raw.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let text = std::str::from_utf8(&raw[..end]).with_context(|| {
            format!(
                ".sbat at file offset {:#x} is not UTF-8",
                s.pointer_to_raw_data
            )
        })?;
        let lines = splitlines(text);
        match lines.first() {
            Some(first) if first.starts_with("sbat,") => {
                out.extend(lines[1..].iter().map(|l| l.to_string()))
            }
            _ => tracing::warn!(
                offset = s.pointer_to_raw_data,
                "ignoring a .sbat section without an `sbat,` header line"
            ),
        }
    }
    Ok(out)
}

/// Python's `str.splitlines()`: splits at `\n`, `\r\n`, `\r`, `\v`, `\f`, `\x1c`–`\x1e`, `\x85`,
/// U+2028 and U+2029; a terminator at the very end does not start another line.
pub fn splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        lines.push(&text[start..i]);
        start = i + c.len_utf8();
        if c == '\r' && chars.peek().is_some_and(|&(_, n)| n == '\n') {
            chars.next();
            start += 1;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use measurements::pe::synth::SynthPe;

    #[test]
    fn splitlines_matches_python() {
        // Expected values from Python 3.11: repr("…".splitlines()).
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("a", &["a"]),
            ("a\n", &["a"]),
            ("a\n\n", &["a", ""]),
            ("a\r\nb\rc\nd", &["a", "b", "c", "d"]),
            (
                "a\x0bb\x0cc\x1cd\x1de\x1ef",
                &["a", "b", "c", "d", "e", "f"],
            ),
            ("a\u{85}b\u{2028}c\u{2029}", &["a", "b", "c"]),
            ("\r\n", &[""]),
            ("\n\r", &["", ""]),
        ];
        for (input, want) in cases {
            assert_eq!(splitlines(input), *want, "{input:?}");
        }
    }

    fn pe_with_sbat(sbat: &[u8]) -> Vec<u8> {
        SynthPe::default()
            .section(".text", &[0; 8], 0x6000_0020)
            .section(".sbat", sbat, 0x4000_0040)
            .build()
    }

    #[test]
    fn merge_table() {
        let stub = pe_with_sbat(
            b"sbat,1,x\nsystemd-stub,1,The systemd Developers,systemd,257,https://systemd.io/\n",
        );
        let kernel =
            pe_with_sbat(b"sbat,1,x\nlinux,1,Red Hat,linux,6.1,mail:secalert@redhat.com\n\0\0");
        let no_header = pe_with_sbat(b"linux,1,x\n");
        let stub_line = "systemd-stub,1,The systemd Developers,systemd,257,https://systemd.io/";
        // name, kernel PE, user text, expected entry lines
        type Case<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>, Vec<&'a str>);
        let red_hat = "linux,1,Red Hat,linux,6.1,mail:secalert@redhat.com";
        let cases: Vec<Case> = vec![
            ("default", None, None, vec![stub_line, DEFAULT_UKI_SBAT]),
            (
                "kernel",
                Some(&kernel),
                None,
                vec![stub_line, red_hat, DEFAULT_UKI_SBAT],
            ),
            (
                "kernel w/o header",
                Some(&no_header),
                None,
                vec![stub_line, DEFAULT_UKI_SBAT],
            ),
            (
                "user + header",
                None,
                Some("sbat,1,y\nfoo,1,x\n"),
                vec![stub_line, "foo,1,x"],
            ),
            (
                "user w/o header",
                None,
                Some("foo,1,x"),
                vec![stub_line, "foo,1,x"],
            ),
        ];
        let stub = Pe::parse(&stub).unwrap();
        for (name, kernel, user, want) in cases {
            let k = kernel.map(|k| Pe::parse(k).unwrap());
            let got = merge(&stub, k.as_ref(), user).unwrap();
            let want = format!("{SBAT_HEADER}\n{}\n\0", want.join("\n"));
            assert_eq!(got, want, "{name}");
        }
    }

    /// ukify 257 with the Debian 257.13 stub and the default entry yields 332 bytes (spec §2.8).
    #[test]
    fn debian_257_stub_sbat_is_332_bytes() {
        let stub_sbat = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\
            systemd-stub,1,The systemd Developers,systemd,257,https://systemd.io/\n\
            systemd-stub.debian,1,Debian GNU/Linux,systemd,257.13-1~deb13u1,https://tracker.debian.org/pkg/systemd\n";
        let stub = pe_with_sbat(stub_sbat.as_bytes());
        let merged = merge(&Pe::parse(&stub).unwrap(), None, None).unwrap();
        assert_eq!(merged.len(), 332);
        assert!(merged.ends_with("/unified_kernel_image/\n\0"));
    }

    #[test]
    fn non_utf8_sbat_is_an_error() {
        let stub = pe_with_sbat(b"sbat,1,x\n\xff\n");
        let err = merge(&Pe::parse(&stub).unwrap(), None, None).unwrap_err();
        assert!(format!("{err:#}").contains("is not UTF-8"), "{err:#}");
    }
}
