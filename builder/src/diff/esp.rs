//! The ESP: FAT volume id and label, and every file (path, size, SHA-256), read with `fatfs`
//! from the partition inside the disk image.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result};
use fatfs::{FileSystem, FsOptions};
use sha2::{Digest, Sha256};

use super::disk::{both, Side};
use super::{Component, Diffs, Options};
use crate::disk::{PartInfo, TYPE_ESP};

/// The UKI's path on the ESP.
const UKI_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// Files larger than this are hashed in pieces, never held whole.
const CHUNK: usize = 1 << 20;

/// A read-only window of the disk file (fatfs wants `Read + Write + Seek`; writes fail).
struct Window<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.len.saturating_sub(self.pos) as usize);
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the ESP is read-only here",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn window<'a>(s: &'a Side, p: &PartInfo) -> Window<'a> {
    Window {
        file: &s.file,
        start: p.offset,
        len: p.size,
        pos: 0,
    }
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

fn list(s: &Side) -> Result<Listing> {
    let p = esp_part(s)?;
    let fs = FileSystem::new(window(s, &p), FsOptions::new()).context("mounting the ESP's FAT")?;
    let mut entries = BTreeMap::new();
    let mut todo = vec![(String::new(), fs.root_dir())];
    while let Some((prefix, dir)) = todo.pop() {
        for e in dir.iter() {
            let e = e.with_context(|| format!("listing /{prefix}"))?;
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{prefix}{name}");
            if e.is_dir() {
                entries.insert(path.clone(), "dir".to_string());
                todo.push((format!("{path}/"), e.to_dir()));
            } else {
                let digest = hash(&mut e.to_file()).with_context(|| format!("reading /{path}"))?;
                entries.insert(path, format!("{} bytes, sha256 {digest}", e.len()));
            }
        }
    }
    Ok(Listing {
        volume_id: fs.volume_id(),
        label: fs.volume_label().trim_end().to_string(),
        entries,
    })
}

fn hash(r: &mut dyn Read) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
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
