//! Block devices as sysfs describes them.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::devnum::DevNum;
use crate::error::{Context, Error};

/// A block device (disk or partition) found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name (`vda1`, `nvme0n1p1`, `loop3p2`).
    pub name: String,
    /// Device node (`/dev/<name>`).
    pub path: PathBuf,
    /// Device number.
    pub dev: DevNum,
    /// Size in bytes.
    pub size_bytes: u64,
}

impl BlockDevice {
    /// Reads `<sys_block>/<name>/{dev,size}`; the node is `<dev_dir>/<name>`.
    pub fn from_sysfs(sys_block: &Path, dev_dir: &Path, name: &str) -> Result<BlockDevice, Error> {
        let dir = sys_block.join(name);
        let dev_text = read_attr(&dir.join("dev"))?;
        let dev = DevNum::parse(&dev_text).ok_or_else(|| {
            Error::msg(
                format!("reading {}/dev", dir.display()),
                format!("unexpected {dev_text:?}"),
            )
        })?;
        let sectors = read_number(&dir.join("size"))?;
        Ok(BlockDevice {
            name: name.to_string(),
            path: dev_dir.join(name),
            dev,
            size_bytes: sectors.saturating_mul(512),
        })
    }
}

/// Reads a sysfs attribute as text.
pub fn read_attr(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).ctx(|| format!("reading {}", path.display()))
}

/// Reads a sysfs attribute holding one decimal number.
pub fn read_number(path: &Path) -> Result<u64, Error> {
    let text = read_attr(path)?;
    text.trim().parse().map_err(|_| {
        Error::msg(
            format!("reading {}", path.display()),
            format!("not a number: {text:?}"),
        )
    })
}

/// Reads exactly `len` bytes at `offset` of `file`.
pub fn read_exact_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}
