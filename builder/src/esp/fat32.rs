//! A small FAT32 writer: geometry, contiguous cluster allocation, 8.3 directory entries, both
//! FATs, FSInfo and the backup boot sector, written with positional writes into a sparse file.
//!
//! Layout choices (all fixed, so output depends only on the inputs): 512-byte sectors, 32
//! reserved sectors, two FATs, root directory at cluster 2, the largest cluster size of
//! 4/2/1/0.5 KiB that still gives a FAT32-sized cluster count, clusters handed out in tree
//! pre-order (a directory, then its entries in name order), a volume-label entry first in the
//! root directory as mkfs.fat writes it.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{ensure, Context, Result};

const SECTOR: u64 = 512;
const RESERVED_SECTORS: u32 = 32;
const FATS: u32 = 2;
/// FAT32 needs at least 65525 clusters; keep a margin so no reader mistakes it for FAT16.
const MIN_CLUSTERS: u32 = 65_536;
const ENTRY: usize = 32;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_VOLUME_ID: u8 = 0x08;
const END_OF_CHAIN: u32 = 0x0fff_ffff;

/// A FAT timestamp: date, time (2-second units) and the 10 ms creation-time refinement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DosTime {
    /// `(year - 1980) << 9 | month << 5 | day`.
    pub date: u16,
    /// `hour << 11 | minute << 5 | second / 2`.
    pub time: u16,
    /// Creation time refinement in 10 ms units (0–199).
    pub tenth: u8,
}

/// Sizes of the FAT32 regions for an image of a given size.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    total_sectors: u32,
    sectors_per_cluster: u32,
    fat_sectors: u32,
    clusters: u32,
}

impl Geometry {
    /// The geometry for `size` bytes (a multiple of 512).
    pub fn new(size: u64) -> Result<Self> {
        let total_sectors = u32::try_from(size / SECTOR).context("ESP larger than 2 TiB")?;
        let pick = [8, 4, 2, 1]
            .into_iter()
            .map(|spc| Self::with_cluster(total_sectors, spc));
        pick.flatten().find(|g| g.clusters >= MIN_CLUSTERS).with_context(|| {
            format!("{size} bytes hold fewer than {MIN_CLUSTERS} 512-byte clusters, too few for FAT32")
        })
    }

    fn with_cluster(total_sectors: u32, spc: u32) -> Option<Self> {
        let avail = total_sectors.checked_sub(RESERVED_SECTORS)?;
        // Upper bound on clusters, then a FAT big enough for that many entries (+2 reserved).
        let fat_sectors = (avail / spc + 2).div_ceil(SECTOR as u32 / 4);
        let clusters = avail.checked_sub(FATS * fat_sectors)? / spc;
        (clusters <= 0x0fff_fff5 - 2).then_some(Geometry {
            total_sectors,
            sectors_per_cluster: spc,
            fat_sectors,
            clusters,
        })
    }

    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * SECTOR
    }

    fn fat_offset(&self, copy: u32) -> u64 {
        u64::from(RESERVED_SECTORS + copy * self.fat_sectors) * SECTOR
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        let data = u64::from(RESERVED_SECTORS + FATS * self.fat_sectors) * SECTOR;
        data + u64::from(cluster - 2) * self.cluster_bytes()
    }
}

/// A directory tree to write: entries keyed by their 11-byte short name.
#[derive(Debug, Default)]
pub struct Dir<'a> {
    entries: BTreeMap<[u8; 11], Node<'a>>,
}

#[derive(Debug)]
enum Node<'a> {
    Dir(Dir<'a>),
    File(&'a [u8]),
}

impl<'a> Dir<'a> {
    /// Adds the file at `path` (components already validated as 8.3 short names), creating
    /// directories on the way.
    pub fn insert(&mut self, path: &[[u8; 11]], data: &'a [u8]) -> Result<()> {
        let (name, rest) = path.split_first().context("empty path")?;
        if rest.is_empty() {
            ensure!(
                !self.entries.contains_key(name),
                "{} exists already",
                show(name)
            );
            ensure!(
                u32::try_from(data.len()).is_ok(),
                "{} is 4 GiB or larger",
                show(name)
            );
            self.entries.insert(*name, Node::File(data));
            return Ok(());
        }
        let node = self
            .entries
            .entry(*name)
            .or_insert_with(|| Node::Dir(Dir::default()));
        match node {
            Node::Dir(d) => d.insert(rest, data),
            Node::File(_) => anyhow::bail!("{} is a file, not a directory", show(name)),
        }
    }
}

/// The text form of a short name, for messages.
fn show(name: &[u8; 11]) -> String {
    let base = String::from_utf8_lossy(&name[..8]).trim_end().to_string();
    let ext = String::from_utf8_lossy(&name[8..]).trim_end().to_string();
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// Converts one path component to an upper-case 8.3 short name.
pub fn short_name(component: &str) -> Result<[u8; 11]> {
    const SPECIAL: &[u8] = b"!#$%&'()-@^_`{}~";
    let (base, ext) = component.rsplit_once('.').unwrap_or((component, ""));
    let valid = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || SPECIAL.contains(&b))
    };
    ensure!(
        (1..=8).contains(&base.len()) && ext.len() <= 3 && valid(base) && valid(ext),
        "{component:?} is not an 8.3 name (1-8 characters, optional 1-3 character extension, \
         letters, digits or !#$%&'()-@^_`{{}}~); long names are not supported"
    );
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base.to_ascii_uppercase().as_bytes());
    out[8..8 + ext.len()].copy_from_slice(ext.to_ascii_uppercase().as_bytes());
    Ok(out)
}

/// A node with its clusters assigned.
struct Laid<'a, 'b> {
    first: u32,
    clusters: u32,
    kind: LaidKind<'a, 'b>,
}

enum LaidKind<'a, 'b> {
    Dir(Vec<(&'b [u8; 11], Laid<'a, 'b>)>),
    File(&'a [u8]),
}

/// Assigns contiguous clusters in pre-order, starting with `dir` at `*next`.
fn lay_out<'a, 'b>(dir: &'b Dir<'a>, next: &mut u32, geo: &Geometry) -> Laid<'a, 'b> {
    let slots = dir.entries.len() + 2; // "." and ".." (the root's label entry uses one of these)
    let clusters = ((slots * ENTRY) as u64)
        .div_ceil(geo.cluster_bytes())
        .max(1) as u32;
    let first = *next;
    *next += clusters;
    let children = dir
        .entries
        .iter()
        .map(|(name, node)| match node {
            Node::Dir(d) => (name, lay_out(d, next, geo)),
            Node::File(data) => {
                let n = (data.len() as u64).div_ceil(geo.cluster_bytes()) as u32;
                let first = if n == 0 { 0 } else { *next };
                *next += n;
                (
                    name,
                    Laid {
                        first,
                        clusters: n,
                        kind: LaidKind::File(data),
                    },
                )
            }
        })
        .collect();
    Laid {
        first,
        clusters,
        kind: LaidKind::Dir(children),
    }
}

/// Everything [`write`] needs besides the tree.
#[derive(Debug, Clone, Copy)]
pub struct Volume {
    /// Volume serial number.
    pub id: u32,
    /// Space-padded upper-case label.
    pub label: [u8; 11],
    /// Timestamp of every entry.
    pub time: DosTime,
}

/// Writes the file system for `root` into `img`, which must be `geo`'s size and all zeros.
pub fn write(img: &File, geo: &Geometry, root: &Dir<'_>, vol: &Volume) -> Result<()> {
    let mut next = 2;
    let laid = lay_out(root, &mut next, geo);
    let used = next - 2;
    ensure!(
        used <= geo.clusters,
        "the files need {used} clusters, the ESP has {}",
        geo.clusters
    );
    let mut fat = vec![0x0fff_fff8, END_OF_CHAIN];
    fat.resize(next as usize, 0);
    write_tree(img, geo, &laid, 0, vol, &mut fat)?;
    let fat_bytes: Vec<u8> = fat.iter().flat_map(|e| e.to_le_bytes()).collect();
    for copy in 0..FATS {
        img.write_all_at(&fat_bytes, geo.fat_offset(copy))
            .context("writing the FAT")?;
    }
    let boot = boot_sector(geo, vol);
    let info = fs_info(geo.clusters - used, next);
    for (sector, bytes) in [(0, &boot), (1, &info), (6, &boot), (7, &info)] {
        img.write_all_at(bytes, sector * SECTOR)
            .context("writing the boot sectors")?;
    }
    Ok(())
}

/// Writes `node` (a directory whose parent starts at `parent`) and everything below it, and
/// records the cluster chains in `fat`.
fn write_tree(
    img: &File,
    geo: &Geometry,
    node: &Laid<'_, '_>,
    parent: u32,
    vol: &Volume,
    fat: &mut [u32],
) -> Result<()> {
    chain(fat, node.first, node.clusters);
    let LaidKind::Dir(children) = &node.kind else {
        return Ok(());
    };
    let mut entries = Vec::with_capacity((children.len() + 2) * ENTRY);
    if node.first == 2 {
        entries.extend(dir_entry(&vol.label, ATTR_VOLUME_ID, 0, 0, vol.time));
    } else {
        entries.extend(dir_entry(
            b".          ",
            ATTR_DIRECTORY,
            node.first,
            0,
            vol.time,
        ));
        entries.extend(dir_entry(
            b"..         ",
            ATTR_DIRECTORY,
            parent,
            0,
            vol.time,
        ));
    }
    for (name, child) in children {
        match &child.kind {
            LaidKind::Dir(_) => {
                entries.extend(dir_entry(name, ATTR_DIRECTORY, child.first, 0, vol.time));
                // ".." of a directory in the root points to cluster 0 (FAT specification).
                let me = if node.first == 2 { 0 } else { node.first };
                write_tree(img, geo, child, me, vol, fat)?;
            }
            LaidKind::File(data) => {
                entries.extend(dir_entry(name, 0, child.first, data.len() as u32, vol.time));
                chain(fat, child.first, child.clusters);
                if !data.is_empty() {
                    img.write_all_at(data, geo.cluster_offset(child.first))
                        .with_context(|| format!("writing {}", show(name)))?;
                }
            }
        }
    }
    img.write_all_at(&entries, geo.cluster_offset(node.first))
        .context("writing a directory")
}

/// Links `count` clusters from `first` into one chain.
fn chain(fat: &mut [u32], first: u32, count: u32) {
    for c in first..first + count {
        fat[c as usize] = if c + 1 == first + count {
            END_OF_CHAIN
        } else {
            c + 1
        };
    }
}

fn dir_entry(name: &[u8; 11], attr: u8, cluster: u32, size: u32, t: DosTime) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    if attr != ATTR_VOLUME_ID {
        e[13] = t.tenth;
        e[14..16].copy_from_slice(&t.time.to_le_bytes());
        e[16..18].copy_from_slice(&t.date.to_le_bytes());
        e[18..20].copy_from_slice(&t.date.to_le_bytes());
    }
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[22..24].copy_from_slice(&t.time.to_le_bytes());
    e[24..26].copy_from_slice(&t.date.to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

fn boot_sector(geo: &Geometry, vol: &Volume) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..3].copy_from_slice(&[0xeb, 0x58, 0x90]);
    b[3..11].copy_from_slice(b"MSWIN4.1");
    b[11..13].copy_from_slice(&512u16.to_le_bytes());
    b[13] = geo.sectors_per_cluster as u8;
    b[14..16].copy_from_slice(&(RESERVED_SECTORS as u16).to_le_bytes());
    b[16] = FATS as u8;
    b[21] = 0xf8; // fixed disk
    b[24..26].copy_from_slice(&32u16.to_le_bytes()); // sectors per track (CHS, unused)
    b[26..28].copy_from_slice(&64u16.to_le_bytes()); // heads (CHS, unused)
    b[32..36].copy_from_slice(&geo.total_sectors.to_le_bytes());
    b[36..40].copy_from_slice(&geo.fat_sectors.to_le_bytes());
    b[44..48].copy_from_slice(&2u32.to_le_bytes()); // root directory cluster
    b[48..50].copy_from_slice(&1u16.to_le_bytes()); // FSInfo sector
    b[50..52].copy_from_slice(&6u16.to_le_bytes()); // backup boot sector
    b[64] = 0x80; // drive number
    b[66] = 0x29; // extended boot signature
    b[67..71].copy_from_slice(&vol.id.to_le_bytes());
    b[71..82].copy_from_slice(&vol.label);
    b[82..90].copy_from_slice(b"FAT32   ");
    b[90..93].copy_from_slice(&[0xf4, 0xeb, 0xfd]); // not bootable: hlt; jmp back
    b[510..].copy_from_slice(&[0x55, 0xaa]);
    b
}

fn fs_info(free: u32, next_free: u32) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    b[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    b[488..492].copy_from_slice(&free.to_le_bytes());
    b[492..496].copy_from_slice(&next_free.to_le_bytes());
    b[508..].copy_from_slice(&0xaa55_0000u32.to_le_bytes());
    b
}
