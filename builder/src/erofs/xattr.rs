//! Inline (per-inode) extended attributes: the 12-byte ibody header followed by
//! `erofs_xattr_entry` records, each padded to 4 bytes. Names are stored without their
//! namespace prefix, which becomes a one-byte name index.

use anyhow::{bail, ensure, Result};

use super::format::XATTR_HEADER_SIZE;
use crate::rootfs::Xattr;

/// Name prefixes the 6.1 kernel has handlers for, with their `EROFS_XATTR_INDEX_*`. The POSIX
/// ACL names are whole names (their suffix is empty).
const PREFIXES: [(&[u8], u8, bool); 5] = [
    (b"user.", 1, false),
    (b"system.posix_acl_access", 2, true),
    (b"system.posix_acl_default", 3, true),
    (b"trusted.", 4, false),
    (b"security.", 6, false),
];

/// Size of `struct erofs_xattr_entry`.
const ENTRY_HEADER: u64 = 4;

/// Splits a full xattr name into (name index, stored suffix), refusing names the format or
/// the kernel cannot represent.
pub fn split_name(name: &[u8]) -> Result<(u8, &[u8])> {
    for (prefix, index, whole) in PREFIXES {
        let Some(suffix) = name.strip_prefix(prefix) else {
            continue;
        };
        if whole && !suffix.is_empty() {
            continue;
        }
        ensure!(
            whole || !suffix.is_empty(),
            "xattr name {:?} has nothing after its namespace prefix",
            String::from_utf8_lossy(name)
        );
        ensure!(
            suffix.len() <= usize::from(u8::MAX),
            "xattr name {:?} is {} bytes after its prefix; EROFS holds at most 255",
            String::from_utf8_lossy(name),
            suffix.len()
        );
        return Ok((index, suffix));
    }
    bail!(
        "xattr {:?} is in a namespace EROFS cannot store (supported: user.*, trusted.*, \
         security.*, system.posix_acl_access, system.posix_acl_default)",
        String::from_utf8_lossy(name)
    )
}

/// Bytes of the inline xattr area for `xattrs` (0 when there are none), after validating
/// every name and value.
pub fn ibody_size(xattrs: &[Xattr]) -> Result<u64> {
    if xattrs.is_empty() {
        return Ok(0);
    }
    let mut size = XATTR_HEADER_SIZE;
    for x in xattrs {
        let (_, suffix) = split_name(&x.name)?;
        ensure!(
            x.value.len() <= usize::from(u16::MAX),
            "xattr {:?} value is {} bytes; EROFS holds at most 65535",
            String::from_utf8_lossy(&x.name),
            x.value.len()
        );
        size += entry_size(suffix.len(), x.value.len());
    }
    Ok(size)
}

/// Appends the inline xattr area (header and entries, in the given order) to `out`.
/// `xattrs` must have passed [`ibody_size`].
pub fn encode_ibody(xattrs: &[Xattr], out: &mut Vec<u8>) -> Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    // h_reserved, h_shared_count = 0 (no shared xattrs), h_reserved2.
    out.extend_from_slice(&[0u8; XATTR_HEADER_SIZE as usize]);
    for x in xattrs {
        let (index, suffix) = split_name(&x.name)?;
        let start = out.len();
        out.push(u8::try_from(suffix.len())?);
        out.push(index);
        out.extend_from_slice(&u16::try_from(x.value.len())?.to_le_bytes());
        out.extend_from_slice(suffix);
        out.extend_from_slice(&x.value);
        let padded = start + entry_size(suffix.len(), x.value.len()) as usize;
        out.resize(padded, 0);
    }
    Ok(())
}

fn entry_size(name_len: usize, value_len: usize) -> u64 {
    (ENTRY_HEADER + name_len as u64 + value_len as u64).next_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_prefixes() {
        type Split = Option<(u8, &'static [u8])>;
        let table: [(&[u8], Split); 10] = [
            (b"user.foo", Some((1, b"foo"))),
            (b"trusted.overlay.opaque", Some((4, b"overlay.opaque"))),
            (b"security.capability", Some((6, b"capability"))),
            (b"security.selinux", Some((6, b"selinux"))),
            (b"system.posix_acl_access", Some((2, b""))),
            (b"system.posix_acl_default", Some((3, b""))),
            (b"system.posix_acl_accessX", None),
            (b"system.nfs4_acl", None),
            (b"user.", None),
            (b"lustre.x", None),
        ];
        for (name, want) in table {
            let got = split_name(name).ok();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn ibody_layout() {
        let xattrs = vec![
            Xattr {
                name: b"security.capability".to_vec(),
                value: vec![7; 20],
            },
            Xattr {
                name: b"user.a".to_vec(),
                value: b"xy".to_vec(),
            },
        ];
        let size = ibody_size(&xattrs).unwrap();
        // 12 header + (4 + 10 + 20 = 34 → 36) + (4 + 1 + 2 = 7 → 8)
        assert_eq!(size, 12 + 36 + 8);
        let mut out = Vec::new();
        encode_ibody(&xattrs, &mut out).unwrap();
        assert_eq!(out.len() as u64, size);
        assert_eq!(out[12..16], [10, 6, 20, 0]);
        assert_eq!(&out[16..26], b"capability");
        assert_eq!(out[48..52], [1, 1, 2, 0]);
        assert_eq!(&out[52..55], b"axy");
        assert_eq!(out[55], 0);
    }

    #[test]
    fn refuses_oversized() {
        let long_name = [b"user.".as_slice(), &[b'n'; 256]].concat();
        let big_value = Xattr {
            name: b"user.v".to_vec(),
            value: vec![0; 65536],
        };
        assert!(ibody_size(&[Xattr {
            name: long_name,
            value: vec![]
        }])
        .is_err());
        assert!(ibody_size(&[big_value]).is_err());
        assert_eq!(ibody_size(&[]).unwrap(), 0);
    }
}
