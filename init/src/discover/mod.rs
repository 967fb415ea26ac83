//! Finding the data and verity partitions by PARTUUID: scan sysfs for disks, read their GPTs.

pub mod pick;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::block::{self, BlockDevice};
use crate::error::{Context, Error};
use crate::gpt::{self, Partition};
use crate::guid::Guid;
use pick::{Pick, SeenPart};

/// How often the disks are rescanned while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Where to look: normally `/sys/class/block` and `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The sysfs block class directory.
    pub sys_block: PathBuf,
    /// The directory holding device nodes.
    pub dev_dir: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            sys_block: PathBuf::from("/sys/class/block"),
            dev_dir: PathBuf::from("/dev"),
        }
    }
}

/// The two partitions dm-verity needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootPartitions {
    /// Data (erofs) partition.
    pub data: BlockDevice,
    /// Verity hash partition.
    pub hash: BlockDevice,
    /// True when found by DPS type GUID instead of PARTUUID.
    pub by_type: bool,
}

/// One scan of all disks: every GPT entry seen, plus notes on disks that could not be read.
pub fn scan(layout: &Layout) -> (Vec<SeenPart>, Vec<String>) {
    let mut seen = Vec::new();
    let mut notes = Vec::new();
    for disk in whole_disks(layout) {
        match read_disk_gpt(layout, &disk) {
            Ok(entries) => {
                let nodes = partition_nodes(layout, &disk);
                seen.extend(entries.into_iter().map(|entry| SeenPart {
                    disk: disk.clone(),
                    node: nodes.get(&entry.number).cloned(),
                    entry,
                }));
            }
            Err(e) => notes.push(format!("{disk}: {}", e.why())),
        }
    }
    (seen, notes)
}

/// Looks once; `Ok(None)` means "not there yet".
pub fn find_once(
    layout: &Layout,
    data: Guid,
    hash: Guid,
    type_fallback: bool,
) -> Result<Option<RootPartitions>, Error> {
    Ok(attempt(layout, data, hash, type_fallback)?.ok())
}

/// One scan: the partitions, or why they are not there yet (`Ok(Err(reason))`).
fn attempt(
    layout: &Layout,
    data: Guid,
    hash: Guid,
    type_fallback: bool,
) -> Result<Result<RootPartitions, String>, Error> {
    let (seen, notes) = scan(layout);
    match pick::pick(&seen, data, hash, type_fallback) {
        Pick::Found {
            data,
            hash,
            by_type,
        } => {
            let dev = |i: usize| {
                let name = seen[i].node.as_deref().unwrap_or_default();
                BlockDevice::from_sysfs(&layout.sys_block, &layout.dev_dir, name)
            };
            Ok(Ok(RootPartitions {
                data: dev(data)?,
                hash: dev(hash)?,
                by_type,
            }))
        }
        Pick::Wait(msg) => Ok(Err(with_notes(msg, &notes))),
        Pick::Fail(msg) => Err(Error::msg("root partitions", with_notes(msg, &notes))),
    }
}

/// Polls until both partitions are present or `timeout` has passed.
///
/// `on_wait` is called once, with the reason, if the first look finds nothing. At the deadline
/// the DPS type GUIDs are tried as a last resort.
pub fn wait_for_root(
    layout: &Layout,
    data: Guid,
    hash: Guid,
    timeout: Duration,
    on_wait: &mut dyn FnMut(&str),
) -> Result<RootPartitions, Error> {
    let start = Instant::now();
    let mut first = true;
    loop {
        let last_try = start.elapsed() >= timeout;
        match attempt(layout, data, hash, last_try)? {
            Ok(found) => return Ok(found),
            Err(why) if last_try => {
                let what = format!(
                    "root partitions (waited {}s, see nodeimg.rootwait=)",
                    timeout.as_secs()
                );
                return Err(Error::msg(what, why));
            }
            Err(why) if first => on_wait(&why),
            Err(_) => {}
        }
        first = false;
        thread::sleep(POLL_INTERVAL);
    }
}

fn with_notes(msg: String, notes: &[String]) -> String {
    if notes.is_empty() {
        msg
    } else {
        format!("{msg} (unreadable disks: {})", notes.join("; "))
    }
}

/// Names of whole disks (entries without a `partition` attribute, non-zero size), sorted.
fn whole_disks(layout: &Layout) -> Vec<String> {
    let Ok(dir) = fs::read_dir(&layout.sys_block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| {
            let d = layout.sys_block.join(name);
            !d.join("partition").exists()
                && block::read_number(&d.join("size")).is_ok_and(|s| s > 0)
        })
        .collect();
    names.sort();
    names
}

/// Partition number → kernel name, from the disk's sysfs children with a `partition` file.
fn partition_nodes(layout: &Layout, disk: &str) -> BTreeMap<u32, String> {
    let mut map = BTreeMap::new();
    let Ok(dir) = fs::read_dir(layout.sys_block.join(disk)) else {
        return map;
    };
    for entry in dir.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let attr = entry.path().join("partition");
        if let Ok(n) = block::read_number(&attr) {
            if let Ok(n) = u32::try_from(n) {
                map.insert(n, name);
            }
        }
    }
    map
}

/// Reads the primary GPT of `/dev/<disk>`, or the backup one if the primary is unusable.
pub fn read_disk_gpt(layout: &Layout, disk: &str) -> Result<Vec<Partition>, Error> {
    let sys = layout.sys_block.join(disk);
    let lbs = block::read_number(&sys.join("queue/logical_block_size")).unwrap_or(512);
    let sectors = block::read_number(&sys.join("size"))?;
    let path = layout.dev_dir.join(disk);
    let file = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
    let what = || format!("reading the GPT of {}", path.display());
    let primary = read_gpt_at(&file, lbs, 1).map_err(|e| Error::msg(what(), e));
    let last_lba = (sectors.saturating_mul(512) / lbs.max(1)).saturating_sub(1);
    match primary {
        Ok(parts) => Ok(parts),
        Err(e) if last_lba > 1 => read_gpt_at(&file, lbs, last_lba).map_err(|_| e),
        Err(e) => Err(e),
    }
}

fn read_gpt_at(file: &File, lbs: u64, lba: u64) -> Result<Vec<Partition>, String> {
    let sector_len = usize::try_from(lbs).map_err(|_| format!("block size {lbs}"))?;
    let offset = lba.checked_mul(lbs).ok_or("header offset overflows")?;
    let sector = block::read_exact_at(file, offset, sector_len)
        .map_err(|e| format!("LBA {lba}: {}", crate::error::describe_io(&e)))?;
    let header = gpt::parse_header(&sector).map_err(|e| format!("header at LBA {lba}: {e}"))?;
    if header.my_lba != lba {
        return Err(format!(
            "header at LBA {lba} says it is at LBA {}",
            header.my_lba
        ));
    }
    let len = usize::try_from(header.entry_array_len()).map_err(|_| "entry array too large")?;
    let array_at = header
        .entries_lba
        .checked_mul(lbs)
        .ok_or("entry offset overflows")?;
    let array = block::read_exact_at(file, array_at, len).map_err(|e| {
        format!(
            "entries at LBA {}: {}",
            header.entries_lba,
            crate::error::describe_io(&e)
        )
    })?;
    gpt::parse_entries(&header, &array)
        .map_err(|e| format!("entries at LBA {}: {e}", header.entries_lba))
}
