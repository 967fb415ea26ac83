//! The ESP: FAT volume id and label, and every file (path, size, SHA-256), read with `fatfs`
//! (bounded: see `crate::esp::list`) from the partition inside the disk image.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::disk::{both, Side};
use super::{Component, Diffs, Options};
use crate::disk::{PartInfo, TYPE_ESP};
use crate::esp::{Item, Window};

/// The UKI's path on the ESP.
const UKI_PATH: &str = "EFI/BOOT/BOOTX64.EFI";

fn window<'a>(s: &'a Side, p: &PartInfo) -> Window<'a> {
    Window::new(&s.file, p.offset, p.size)
}

/// What the ESP holds: `path → "dir"` or `"<size> bytes, sha256 <hex>"`.
#[derive(Debug)]
struct Listing {
    volume_id: u32,
    label: String,
    entries: BTreeMap<String, String>,
}

fn esp_part(s: &Side) -> Result<PartInfo> {
    s.part(TYPE_ESP).cloned().context("no ESP partition")
}

/// The ESP's listing.
fn list(s: &Side) -> Result<Listing> {
    let p = esp_part(s)?;
    let l = crate::esp::list(window(s, &p)).context("reading the ESP's FAT")?;
    let entries = l
        .items
        .into_iter()
        .map(|(path, item)| {
            let shown = match item {
                Item::Dir => "dir".to_string(),
                Item::File { len, sha256 } => {
                    format!(
                        "{len} bytes, sha256 {}",
                        sha256.map(hex::encode).unwrap_or_default()
                    )
                }
            };
            (path, shown)
        })
        .collect();
    Ok(Listing {
        volume_id: l.volume_id,
        label: l.label,
        entries,
    })
}

/// Volume id, label and the file listing of both ESPs.
pub fn compare(a: &Side, b: &Side, opts: &Options) -> Component {
    let (la, lb) = match both("esp", opts, list, a, b) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let mut d = Diffs::new(opts.limit);
    d.cmp(
        "volume",
        "id",
        format!("{:08x}", la.volume_id),
        format!("{:08x}", lb.volume_id),
    );
    d.cmp("volume", "label", &la.label, &lb.label);
    let keys: std::collections::BTreeSet<&String> =
        la.entries.keys().chain(lb.entries.keys()).collect();
    for k in keys {
        let item = format!("/{k}");
        match (la.entries.get(k), lb.entries.get(k)) {
            (Some(x), Some(y)) => d.cmp(&item, "content", x, y),
            (x, y) => d.push(&item, "presence", x.cloned(), y.cloned()),
        }
    }
    d.into_component("esp")
}

/// The UKI (`\EFI\BOOT\BOOTX64.EFI`) of a disk's ESP.
pub fn read_uki(s: &Side) -> Result<Vec<u8>> {
    let p = esp_part(s)?;
    crate::esp::read_file(window(s, &p), UKI_PATH)
        .context("reading \\EFI\\BOOT\\BOOTX64.EFI from the ESP")
}
