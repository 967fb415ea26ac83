//! Parsing an inode's xattr area: the 12-byte header, `h_shared_count` shared-xattr ids
//! (entries in the shared area at `xattr_blkaddr`), then inline entries padded to 4 bytes.

use anyhow::{bail, ensure, Context, Result};

use super::{le16, le32, Image, ReadAt};
use crate::rootfs::Xattr;

/// The name prefix of a (short) `e_name_index`.
fn prefix(index: u8) -> Result<&'static [u8]> {
    Ok(match index {
        1 => b"user.",
        2 => b"system.posix_acl_access",
        3 => b"system.posix_acl_default",
        4 => b"trusted.",
        5 => b"lustre.",
        6 => b"security.",
        i if i & 0x80 != 0 => bail!("long xattr name prefixes (index {i:#x}) are not supported"),
        i => bail!("unknown xattr name index {i}"),
    })
}

/// Decodes one entry at the start of `b`; returns it and its padded length.
fn entry(b: &[u8]) -> Result<(Xattr, usize)> {
    ensure!(
        b.len() >= 4,
        "xattr entry header cut off ({} bytes left)",
        b.len()
    );
    let (name_len, index, value_len) = (usize::from(b[0]), b[1], usize::from(le16(b, 2)));
    let total = 4 + name_len + value_len;
    let body = b.get(4..total).with_context(|| {
        format!(
            "xattr entry of {total} bytes overruns its area ({} left)",
            b.len()
        )
    })?;
    let (suffix, value) = body.split_at(name_len);
    let name = [prefix(index)?, suffix].concat();
    ensure!(
        !suffix.is_empty() || matches!(index, 2 | 3),
        "xattr with index {index} has an empty name"
    );
    Ok((
        Xattr {
            name,
            value: value.to_vec(),
        },
        total.next_multiple_of(4),
    ))
}

/// Parses an inline xattr body (header, shared ids, entries).
pub fn parse<S: ReadAt>(img: &Image<S>, body: &[u8]) -> Result<Vec<Xattr>> {
    ensure!(
        body.len() >= 12,
        "xattr area of {} bytes has no header",
        body.len()
    );
    let shared = usize::from(body[4]);
    let mut pos = 12 + shared * 4;
    ensure!(
        pos <= body.len(),
        "{shared} shared xattr ids do not fit an area of {} bytes",
        body.len()
    );
    let mut out = Vec::new();
    for i in 0..shared {
        let id = le32(body, 12 + i * 4);
        out.push(shared_entry(img, id).with_context(|| format!("shared xattr id {id}"))?);
    }
    while pos < body.len() {
        let (x, len) =
            entry(&body[pos..]).with_context(|| format!("inline xattr at byte {pos}"))?;
        out.push(x);
        pos += len;
    }
    ensure!(
        pos == body.len(),
        "inline xattr entries end at byte {pos}, past the {}-byte area",
        body.len()
    );
    Ok(out)
}

/// Reads the shared xattr `id` (an offset in 4-byte units from `xattr_blkaddr`).
fn shared_entry<S: ReadAt>(img: &Image<S>, id: u32) -> Result<Xattr> {
    let at = u64::from(img.sb.xattr_blkaddr)
        .checked_mul(img.sb.block_size)
        .and_then(|b| b.checked_add(u64::from(id) * 4))
        .context("shared xattr offset overflows")?;
    let head = img.bytes(at, 4, "shared xattr header")?;
    let len = 4 + u64::from(head[0]) + u64::from(le16(&head, 2));
    let b = img.bytes(at, len, "shared xattr")?;
    Ok(entry(&b)?.0)
}
