//! Device-mapper ioctl buffers (`linux/dm-ioctl.h`, spec §11.4): pure encoding and decoding.
//!
//! [`control`] issues the ioctls.

pub mod control;

use std::fmt;

/// `sizeof(struct dm_ioctl)`.
pub const DM_IOCTL_SIZE: usize = 312;

/// `sizeof(struct dm_target_spec)`.
pub const TARGET_SPEC_SIZE: usize = 40;

/// Interface version sent with every request; the kernel accepts major 4 and any lower minor.
pub const INTERFACE_VERSION: [u32; 3] = [4, 0, 0];

/// `DM_READONLY_FLAG`.
pub const READONLY_FLAG: u32 = 1 << 0;
/// `DM_SUSPEND_FLAG`.
pub const SUSPEND_FLAG: u32 = 1 << 1;

/// `DM_NAME_LEN` (including the NUL).
const NAME_LEN: usize = 128;
/// `DM_UUID_LEN` (including the NUL).
const UUID_LEN: usize = 129;
/// `DM_MAX_TYPE_NAME` (including the NUL).
const TYPE_LEN: usize = 16;

/// The device-mapper commands the init uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `DM_VERSION`.
    Version = 0,
    /// `DM_DEV_CREATE`.
    DevCreate = 3,
    /// `DM_DEV_REMOVE`.
    DevRemove = 4,
    /// `DM_DEV_SUSPEND` (resume when sent without [`SUSPEND_FLAG`]).
    DevSuspend = 6,
    /// `DM_DEV_STATUS`.
    DevStatus = 7,
    /// `DM_TABLE_LOAD`.
    TableLoad = 9,
}

impl Command {
    /// The ioctl request number `_IOWR(0xfd, nr, struct dm_ioctl)`.
    pub fn request(self) -> u32 {
        0xc000_0000 | ((DM_IOCTL_SIZE as u32) << 16) | (0xfd << 8) | self as u32
    }
}

/// One line of a device-mapper table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// First sector covered.
    pub start: u64,
    /// Number of 512-byte sectors.
    pub length: u64,
    /// Target type, e.g. `verity`.
    pub target_type: String,
    /// Target parameters.
    pub params: String,
}

/// A request that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

/// The header fields of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// Device name (empty for `DM_VERSION`).
    pub name: &'a str,
    /// Device UUID (may be empty).
    pub uuid: &'a str,
    /// `DM_*_FLAG` bits.
    pub flags: u32,
    /// Table targets (only for `DM_TABLE_LOAD`).
    pub targets: &'a [Target],
}

/// Checks a device name the way the kernel will (non-empty, < 128 bytes, no `/`, no NUL).
pub fn check_name(name: &str) -> Result<(), EncodeError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(EncodeError(format!("device name {name:?} is not allowed")));
    }
    if name.len() >= NAME_LEN || name.contains(['/', '\0']) {
        return Err(EncodeError(format!(
            "device name {name:?}: needs < {NAME_LEN} bytes without '/' or NUL"
        )));
    }
    Ok(())
}

/// Encodes `struct dm_ioctl` followed by the target specs of `req`.
pub fn encode(req: &Request<'_>) -> Result<Vec<u8>, EncodeError> {
    let mut payload = Vec::new();
    for t in req.targets {
        encode_target(t, &mut payload)?;
    }
    let mut buf = vec![0u8; DM_IOCTL_SIZE];
    buf.extend_from_slice(&payload);
    let total = u32::try_from(buf.len())
        .map_err(|_| EncodeError(format!("table of {} bytes is too large", buf.len())))?;
    let count = u32::try_from(req.targets.len()).unwrap_or(u32::MAX);
    for (i, v) in INTERFACE_VERSION.iter().enumerate() {
        put32(&mut buf, i * 4, *v);
    }
    put32(&mut buf, 12, total); // data_size
    put32(&mut buf, 16, DM_IOCTL_SIZE as u32); // data_start
    put32(&mut buf, 20, count); // target_count
    put32(&mut buf, 28, req.flags);
    put_str(&mut buf[48..48 + NAME_LEN], req.name, "device name")?;
    put_str(&mut buf[176..176 + UUID_LEN], req.uuid, "device uuid")?;
    Ok(buf)
}

fn encode_target(t: &Target, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if t.params.contains('\0') {
        return Err(EncodeError("target parameters contain a NUL byte".into()));
    }
    let unpadded = TARGET_SPEC_SIZE + t.params.len() + 1;
    let len = unpadded.next_multiple_of(8);
    let next = u32::try_from(len)
        .map_err(|_| EncodeError(format!("target parameters of {} bytes", t.params.len())))?;
    let mut spec = vec![0u8; len];
    spec[0..8].copy_from_slice(&t.start.to_le_bytes());
    spec[8..16].copy_from_slice(&t.length.to_le_bytes());
    put32(&mut spec, 20, next); // status (offset 16) stays 0
    put_str(&mut spec[24..24 + TYPE_LEN], &t.target_type, "target type")?;
    spec[TARGET_SPEC_SIZE..TARGET_SPEC_SIZE + t.params.len()].copy_from_slice(t.params.as_bytes());
    out.extend_from_slice(&spec);
    Ok(())
}

/// Fields of the `struct dm_ioctl` the kernel writes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Interface version of the kernel (for `DM_VERSION`).
    pub version: [u32; 3],
    /// Open count of the device.
    pub open_count: i32,
    /// Flags.
    pub flags: u32,
    /// Kernel-encoded device number (`huge_encode_dev`, same layout as glibc's `makedev`).
    pub dev: u64,
}

/// Decodes the header the kernel wrote back into `buf`.
pub fn decode_reply(buf: &[u8]) -> Result<Reply, EncodeError> {
    let head = buf.get(..DM_IOCTL_SIZE).ok_or_else(|| {
        EncodeError(format!(
            "reply of {} bytes is shorter than dm_ioctl",
            buf.len()
        ))
    })?;
    let u32_at =
        |off: usize| u32::from_ne_bytes([head[off], head[off + 1], head[off + 2], head[off + 3]]);
    let mut dev = [0u8; 8];
    dev.copy_from_slice(&head[40..48]);
    Ok(Reply {
        version: [u32_at(0), u32_at(4), u32_at(8)],
        open_count: u32_at(24) as i32,
        flags: u32_at(28),
        dev: u64::from_ne_bytes(dev),
    })
}

fn put32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Copies `s` into a fixed NUL-terminated field.
fn put_str(field: &mut [u8], s: &str, what: &str) -> Result<(), EncodeError> {
    if s.len() >= field.len() || s.contains('\0') {
        return Err(EncodeError(format!(
            "{what} {s:?}: needs < {} bytes and no NUL",
            field.len()
        )));
    }
    field[..s.len()].copy_from_slice(s.as_bytes());
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
