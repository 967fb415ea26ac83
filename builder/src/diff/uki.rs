//! UKI sections: order, then per section its contents (text for the text sections, else the
//! SHA-256 and length); headers and padding only when every section is equal.

use anyhow::{Context, Result};
use measurements::pe::Pe;
use sha2::{Digest, Sha256};

use super::Diffs;

/// Sections whose contents are shown as text.
const TEXT: &[&str] = &[".cmdline", ".osrel", ".uname", ".sbat", ".sdmagic"];

/// (name, shown contents) of every section, in table order.
fn sections(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let pe = Pe::parse(bytes).context("parsing the UKI's PE headers")?;
    pe.sections
        .iter()
        .map(|s| {
            let name = s.name_lossy();
            let data = pe
                .contents(s)
                .with_context(|| format!("reading UKI section {name}"))?;
            let shown = if TEXT.contains(&name.as_str()) {
                String::from_utf8_lossy(data)
                    .trim_end_matches('\0')
                    .to_string()
            } else {
                format!(
                    "sha256 {} ({} bytes)",
                    hex::encode(Sha256::digest(data)),
                    data.len()
                )
            };
            Ok((name, shown))
        })
        .collect()
}

/// Compares two UKIs section by section.
pub fn compare(a: &[u8], b: &[u8], d: &mut Diffs) -> Result<()> {
    let (sa, sb) = (sections(a).context("UKI A")?, sections(b).context("UKI B")?);
    let names = |s: &[(String, String)]| s.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let (na, nb) = (names(&sa), names(&sb));
    let before = d.is_empty();
    d.cmp("sections", "order", na.join(" "), nb.join(" "));
    let mut all = na.clone();
    all.extend(nb.iter().filter(|n| !na.contains(n)).cloned());
    for name in &all {
        let get =
            |s: &[(String, String)]| s.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        match (get(&sa), get(&sb)) {
            (Some(x), Some(y)) => d.cmp(name, "content", x, y),
            (x, y) => d.push(
                name,
                "presence",
                x.map(|_| "section".into()),
                y.map(|_| "section".into()),
            ),
        }
    }
    if before && d.is_empty() && a != b {
        let at = a
            .iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        d.push(
            "PE headers or padding",
            "bytes",
            Some(format!("differ from file offset {at}")),
            None,
        );
    }
    Ok(())
}

/// The `roothash=` of a UKI's `.cmdline`, if it has one.
pub fn root_hash(uki: &[u8]) -> Option<String> {
    let info = crate::uki::read(uki).ok()?;
    info.cmdline?
        .split_whitespace()
        .find_map(|a| a.strip_prefix("roothash="))
        .map(str::to_string)
}
