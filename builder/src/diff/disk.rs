//! The disk components in order: GPT, ESP files, the ESP's UKI, dm-verity, the erofs tree;
//! and the `bytes` fallback for differences none of them explains.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::{esp, first_difference, skipped, tree, uki, Component, Diffs, Options};
use crate::disk::{self, GptTable, PartInfo};

/// One side of the comparison: the open disk and its GPT.
pub struct Side {
    pub file: File,
    pub gpt: GptTable,
}

impl Side {
    fn open(p: &Path) -> Result<Self> {
        let file = File::open(p).with_context(|| format!("opening {}", p.display()))?;
        let gpt = disk::read_table(&file)
            .with_context(|| format!("reading the GPT of {}", p.display()))?;
        Ok(Side { file, gpt })
    }

    /// The first partition of type `t`.
    pub fn part(&self, t: [u8; 16]) -> Option<&PartInfo> {
        self.gpt.partitions.iter().find(|p| p.type_guid == t)
    }
}

/// Runs `f` on both sides; `Err` is a component to report instead (one side unreadable is a
/// difference, both unreadable a skip).
pub fn both<T>(
    name: &str,
    opts: &Options,
    mut f: impl FnMut(&Side) -> Result<T>,
    a: &Side,
    b: &Side,
) -> std::result::Result<(T, T), Component> {
    match (f(a), f(b)) {
        (Ok(x), Ok(y)) => Ok((x, y)),
        (Err(ea), Err(eb)) => Err(skipped(name, format!("A: {ea:#}; B: {eb:#}"))),
        (ra, rb) => {
            let show = |r: &Result<T>| match r {
                Ok(_) => "readable".to_string(),
                Err(e) => format!("unreadable: {e:#}"),
            };
            let mut d = Diffs::new(opts.limit);
            d.push(name, "readability", Some(show(&ra)), Some(show(&rb)));
            Err(d.into_component(name))
        }
    }
}

/// Every disk component of `a` and `b`, in report order.
pub fn compare(a: &Path, b: &Path, opts: &Options) -> Result<Vec<Component>> {
    let (sa, sb) = (Side::open(a)?, Side::open(b)?);
    let mut out = vec![gpt(&sa.gpt, &sb.gpt, opts)];
    out.push(esp::compare(&sa, &sb, opts));
    let ukis = both("uki", opts, esp::read_uki, &sa, &sb);
    let hashes = match &ukis {
        Ok((ua, ub)) => {
            let mut d = Diffs::new(opts.limit);
            out.push(match uki::compare(ua, ub, &mut d) {
                Ok(()) => d.into_component("uki"),
                Err(e) => skipped("uki", format!("{e:#}")),
            });
            (uki::root_hash(ua), uki::root_hash(ub))
        }
        Err(c) => {
            out.push(c.clone());
            (None, None)
        }
    };
    out.push(verity(&sa, &sb, hashes, opts));
    out.extend(tree::compare(&sa, &sb, opts));
    Ok(out)
}

fn guid(g: &[u8; 16]) -> String {
    disk::guid_to_string(g)
}

fn type_of(p: &PartInfo) -> String {
    disk::type_name(&p.type_guid).map_or_else(|| guid(&p.type_guid), str::to_string)
}

/// Disk GUID, geometry and every partition entry.
pub fn gpt(a: &GptTable, b: &GptTable, opts: &Options) -> Component {
    let mut d = Diffs::new(opts.limit);
    d.cmp("disk", "GUID", guid(&a.disk_guid), guid(&b.disk_guid));
    d.cmp(
        "disk",
        "backup header LBA (disk size)",
        a.backup_lba,
        b.backup_lba,
    );
    d.cmp(
        "disk",
        "first usable LBA",
        a.first_usable_lba,
        b.first_usable_lba,
    );
    d.cmp(
        "disk",
        "last usable LBA",
        a.last_usable_lba,
        b.last_usable_lba,
    );
    let mut numbers: Vec<u32> = a
        .partitions
        .iter()
        .chain(&b.partitions)
        .map(|p| p.number)
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    for n in numbers {
        let find = |t: &GptTable| t.partitions.iter().find(|p| p.number == n).cloned();
        let item = format!("partition {n}");
        match (find(a), find(b)) {
            (Some(pa), Some(pb)) => {
                let item = format!("{item} ({})", type_of(&pa));
                d.cmp(&item, "type", type_of(&pa), type_of(&pb));
                d.cmp(&item, "UUID", guid(&pa.unique_guid), guid(&pb.unique_guid));
                d.cmp(&item, "name", &pa.name, &pb.name);
                d.cmp(&item, "offset", pa.offset, pb.offset);
                d.cmp(&item, "size", pa.size, pb.size);
                d.cmp(
                    &item,
                    "attributes",
                    format!("{:#x}", pa.attrs),
                    format!("{:#x}", pb.attrs),
                );
            }
            (pa, pb) => d.push(
                &item,
                "presence",
                pa.map(|p| type_of(&p)),
                pb.map(|p| type_of(&p)),
            ),
        }
    }
    d.into_component("gpt")
}

/// Reads the 512-byte verity superblock at the start of `p`.
fn verity_sb(s: &Side, p: &PartInfo) -> Result<(crate::verity::Params, u64)> {
    let mut sb = [0u8; 512];
    s.file
        .read_exact_at(&mut sb, p.offset)
        .context("reading the verity superblock")?;
    crate::verity::parse_superblock(&sb)
}

/// Superblock fields, the root hash from each UKI's `roothash=`, and the hash tree bytes.
fn verity(
    a: &Side,
    b: &Side,
    hashes: (Option<String>, Option<String>),
    opts: &Options,
) -> Component {
    let name = "verity";
    let part = |s: &Side| {
        s.part(disk::TYPE_ROOT_VERITY_X86_64)
            .cloned()
            .context("no root-x86-64-verity partition")
    };
    let (pa, pb) = match both(name, opts, part, a, b) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let mut d = Diffs::new(opts.limit);
    d.cmp(
        "root hash",
        "value",
        hashes.0.as_deref().unwrap_or("-"),
        hashes.1.as_deref().unwrap_or("-"),
    );
    match (verity_sb(a, &pa), verity_sb(b, &pb)) {
        (Ok((x, nx)), Ok((y, ny))) => {
            let sb = "superblock";
            d.cmp(sb, "UUID", guid(&x.uuid), guid(&y.uuid));
            d.cmp(sb, "salt", hex::encode(&x.salt), hex::encode(&y.salt));
            d.cmp(sb, "data block size", x.data_block_size, y.data_block_size);
            d.cmp(sb, "hash block size", x.hash_block_size, y.hash_block_size);
            d.cmp(sb, "data blocks", nx, ny);
        }
        (x, y) => d.push(
            "superblock",
            "readability",
            Some(x.map_or_else(|e| format!("{e:#}"), |_| "ok".into())),
            Some(y.map_or_else(|e| format!("{e:#}"), |_| "ok".into())),
        ),
    }
    if d.is_empty() {
        match region_difference(a, &pa, b, &pb) {
            Ok(Some(at)) => d.push(
                "hash tree",
                "bytes",
                Some(format!("differ from partition offset {at}")),
                None,
            ),
            Ok(None) => {}
            Err(e) => return skipped(name, format!("{e:#}")),
        }
    }
    d.into_component(name)
}

/// First differing offset of two partitions' bytes (over the shorter length, then lengths).
pub fn region_difference(a: &Side, pa: &PartInfo, b: &Side, pb: &PartInfo) -> Result<Option<u64>> {
    let reader = |s: &Side, p: &PartInfo| -> Result<std::io::Take<std::io::BufReader<File>>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = s.file.try_clone()?;
        f.seek(SeekFrom::Start(p.offset))?;
        Ok(std::io::BufReader::with_capacity(1 << 20, f).take(p.size))
    };
    first_difference(&mut reader(a, pa)?, &mut reader(b, pb)?)
}

/// When no component found a difference but the files differ: where the first byte differs.
pub fn unexplained_bytes(a: &Path, b: &Path, opts: &Options) -> Result<Component> {
    let mut d = Diffs::new(opts.limit);
    if let Some(at) = super::same_bytes(a, b)? {
        let place = Side::open(a)
            .ok()
            .and_then(|s| {
                s.gpt
                    .partitions
                    .iter()
                    .find(|p| (p.offset..p.offset + p.size).contains(&at))
                    .map(|p| {
                        format!(
                            "inside partition {} ({}) at its offset {}",
                            p.number,
                            type_of(p),
                            at - p.offset
                        )
                    })
            })
            .unwrap_or_else(|| "outside every partition".into());
        d.push(
            "disk.raw",
            "bytes",
            Some(format!("differ: first at offset {at}, {place}")),
            None,
        );
    }
    Ok(Component {
        note: Some("differences no component explains".into()),
        ..d.into_component("bytes")
    })
}
