//! Bounds-checked little-endian reads: every read names what it reads and where.

use super::error::{CvmError, Result};

/// `data[offset..offset + len]`, or a [`CvmError::Truncated`] naming `what`.
pub(crate) fn slice<'a>(
    data: &'a [u8],
    offset: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8]> {
    offset
        .checked_add(len)
        .and_then(|end| data.get(offset..end))
        .ok_or(CvmError::Truncated {
            what,
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
            len: len as u64,
            size: data.len() as u64,
        })
}

fn array<const N: usize>(data: &[u8], offset: usize, what: &'static str) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    out.copy_from_slice(slice(data, offset, N, what)?);
    Ok(out)
}

/// A little-endian `u16` at `offset`.
pub(crate) fn le_u16(data: &[u8], offset: usize, what: &'static str) -> Result<u16> {
    array(data, offset, what).map(u16::from_le_bytes)
}

/// A little-endian `u32` at `offset`.
pub(crate) fn le_u32(data: &[u8], offset: usize, what: &'static str) -> Result<u32> {
    array(data, offset, what).map(u32::from_le_bytes)
}

/// A little-endian `u64` at `offset`.
pub(crate) fn le_u64(data: &[u8], offset: usize, what: &'static str) -> Result<u64> {
    array(data, offset, what).map(u64::from_le_bytes)
}

/// Where a structure `offset_from_end` bytes before the end of a `size`-byte image starts.
pub(crate) fn from_end(
    size: usize,
    offset_from_end: u32,
    what: &'static str,
    len: usize,
) -> Result<usize> {
    size.checked_sub(offset_from_end as usize)
        .ok_or(CvmError::Truncated {
            what,
            offset: size as i64 - i64::from(offset_from_end),
            len: len as u64,
            size: size as u64,
        })
}
