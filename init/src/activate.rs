//! Activating the dm-verity device from the two partitions (I/O around [`crate::verity`]).

use std::fs::File;
use std::path::PathBuf;

use crate::block::{self, BlockDevice};
use crate::cmdline::RootHash;
use crate::devnum::DevNum;
use crate::dm::control;
use crate::error::{Context, Error};
use crate::verity::{self, Superblock, SUPERBLOCK_SIZE};

/// An active dm-verity device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityDevice {
    /// Device-mapper name.
    pub name: String,
    /// Device number of the dm device.
    pub dev: DevNum,
    /// `/dev/mapper/<name>`.
    pub node: PathBuf,
}

/// Reads and validates the superblock at offset 0 of the hash device.
pub fn read_superblock(hash: &BlockDevice) -> Result<Superblock, Error> {
    let what = || format!("reading the verity superblock of {}", hash.path.display());
    let file = File::open(&hash.path).ctx(what)?;
    let bytes = block::read_exact_at(&file, 0, SUPERBLOCK_SIZE).ctx(what)?;
    verity::parse_superblock(&bytes).map_err(|e| Error::msg(what(), e.to_string()))
}

/// Creates the read-only dm-verity device `name` over `data` and `hash`, checked against `roothash`.
///
/// The kernel verifies blocks when they are read: a wrong root hash or corrupted data shows up
/// as `EIO` on reads of the returned device, not here.
pub fn open_verity(
    name: &str,
    data: &BlockDevice,
    hash: &BlockDevice,
    roothash: &RootHash,
) -> Result<VerityDevice, Error> {
    let sb = read_superblock(hash)?;
    let what = || format!("verity superblock of {}", hash.path.display());
    sb.check_fits(data.size_bytes, hash.size_bytes)
        .map_err(|e| Error::msg(what(), e.to_string()))?;
    let target = verity::table(&sb, data.dev, hash.dev, roothash)
        .map_err(|e| Error::msg(what(), e.to_string()))?;
    let dev = control::create_device(name, "", &[target], true)?;
    let node = match control::ensure_node(name, dev) {
        Ok(node) => node,
        Err(e) => {
            let _ = control::remove_device(name);
            return Err(e);
        }
    };
    let device = VerityDevice {
        name: name.to_string(),
        dev,
        node,
    };
    // The erofs superblock, read through the verified device, states the image size.
    if let Err(e) = check_covers_erofs(&device, &sb) {
        let _ = close_verity(&device);
        return Err(e);
    }
    Ok(device)
}

fn check_covers_erofs(dev: &VerityDevice, sb: &Superblock) -> Result<(), Error> {
    let what = || {
        format!(
            "reading the erofs superblock through {}",
            dev.node.display()
        )
    };
    let file = File::open(&dev.node).ctx(what)?;
    // EIO here is the first verified read failing: the same `verity:` error as at mount.
    let bytes = block::read_exact_at(&file, verity::EROFS_SB_OFFSET, 512)
        .map_err(|e| crate::rootfs::verity_aware(what(), &e))?;
    let size = verity::erofs_image_bytes(&bytes).map_err(|e| Error::msg(what(), e.to_string()))?;
    sb.check_covers(size).map_err(|e| {
        Error::msg(
            format!("verity device {}", dev.node.display()),
            e.to_string(),
        )
    })
}

/// Removes the device and its `/dev/mapper` node.
pub fn close_verity(dev: &VerityDevice) -> Result<(), Error> {
    let _ = std::fs::remove_file(&dev.node);
    control::remove_device(&dev.name)
}
