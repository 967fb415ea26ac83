//! EROFS on-disk structures as the Linux 6.1 kernel reads them (`fs/erofs/erofs_fs.h`), encoded
//! by hand into little-endian byte arrays. Only the uncompressed subset this writer emits is here.

/// Block size: 4 KiB (`blkszbits = 12`), the only size a 4 KiB-page 6.1 kernel mounts.
pub const BLOCK_SIZE: u64 = 4096;
/// `log2(BLOCK_SIZE)`.
pub const BLOCK_BITS: u8 = 12;
/// Byte offset of the superblock inside block 0.
pub const SUPER_OFFSET: u64 = 1024;
/// Size of the superblock (no extension slots).
pub const SUPER_SIZE: u64 = 128;
/// `EROFS_SUPER_MAGIC_V1`.
pub const SUPER_MAGIC: u32 = 0xE0F5_E1E2;
/// Inodes are addressed in 32-byte slots: `nid = offset / 32` (with `meta_blkaddr = 0`).
pub const SLOT_SIZE: u64 = 32;
/// Size of `struct erofs_inode_extended`.
pub const INODE_SIZE: u64 = 64;
/// Size of `struct erofs_xattr_ibody_header`.
pub const XATTR_HEADER_SIZE: u64 = 12;
/// Size of `struct erofs_dirent`.
pub const DIRENT_SIZE: u64 = 12;
/// Longest file name a directory entry can hold.
pub const NAME_MAX: usize = 255;
/// `EROFS_NULL_ADDR`: the block address of an inode without data blocks of its own.
pub const NULL_ADDR: u32 = u32::MAX;

/// `i_format` data layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `EROFS_INODE_FLAT_PLAIN`: all data in consecutive blocks from `raw_blkaddr`.
    FlatPlain = 0,
    /// `EROFS_INODE_FLAT_INLINE`: full blocks from `raw_blkaddr`, the tail right after the
    /// inode and its xattrs, inside the same block.
    FlatInline = 2,
}

/// `EROFS_FT_*` directory entry file types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Regular = 1,
    Dir = 2,
    CharDev = 3,
    BlockDev = 4,
    Fifo = 5,
    Socket = 6,
    Symlink = 7,
}

/// Superblock fields this writer sets; every other field is zero.
#[derive(Debug, Clone)]
pub struct SuperBlock {
    pub root_nid: u16,
    pub inos: u64,
    pub build_time: u64,
    pub blocks: u32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
}

impl SuperBlock {
    /// The 128-byte `struct erofs_super_block` (checksum and all feature bits zero,
    /// `meta_blkaddr = 0`, no shared xattrs).
    pub fn encode(&self) -> [u8; SUPER_SIZE as usize] {
        let mut b = [0u8; SUPER_SIZE as usize];
        put(&mut b, 0, &SUPER_MAGIC.to_le_bytes());
        b[12] = BLOCK_BITS;
        put(&mut b, 14, &self.root_nid.to_le_bytes());
        put(&mut b, 16, &self.inos.to_le_bytes());
        put(&mut b, 24, &self.build_time.to_le_bytes());
        put(&mut b, 36, &self.blocks.to_le_bytes());
        put(&mut b, 48, &self.uuid);
        put(&mut b, 64, &self.volume_name);
        b
    }
}

/// One 64-byte extended inode (`struct erofs_inode_extended`).
#[derive(Debug, Clone)]
pub struct InodeExtended {
    pub layout: Layout,
    pub xattr_icount: u16,
    pub mode: u16,
    pub size: u64,
    /// `raw_blkaddr` for files, dirs and symlinks; the encoded `rdev` for devices.
    pub i_u: u32,
    pub ino: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub nlink: u32,
}

impl InodeExtended {
    /// The on-disk bytes; `i_format` bit 0 = 1 marks the extended form.
    pub fn encode(&self) -> [u8; INODE_SIZE as usize] {
        let mut b = [0u8; INODE_SIZE as usize];
        let format = 1u16 | ((self.layout as u16) << 1);
        put(&mut b, 0, &format.to_le_bytes());
        put(&mut b, 2, &self.xattr_icount.to_le_bytes());
        put(&mut b, 4, &self.mode.to_le_bytes());
        put(&mut b, 8, &self.size.to_le_bytes());
        put(&mut b, 16, &self.i_u.to_le_bytes());
        put(&mut b, 20, &self.ino.to_le_bytes());
        put(&mut b, 24, &self.uid.to_le_bytes());
        put(&mut b, 28, &self.gid.to_le_bytes());
        put(&mut b, 32, &self.mtime.to_le_bytes());
        // i_mtime_nsec (40..44) stays 0: the tree has whole seconds.
        put(&mut b, 44, &self.nlink.to_le_bytes());
        b
    }
}

/// `new_encode_dev()`: the 32-bit device number `new_decode_dev()` in the kernel reads back.
/// Callers check `major < 4096` and `minor < 2^20` first.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Appends one `struct erofs_dirent` (nid, name offset, file type).
pub fn push_dirent(buf: &mut Vec<u8>, nid: u64, nameoff: u16, ft: FileType) {
    buf.extend_from_slice(&nid.to_le_bytes());
    buf.extend_from_slice(&nameoff.to_le_bytes());
    buf.push(ft as u8);
    buf.push(0);
}

/// `xattr_icount` for an inline xattr area of `ibody_size` bytes (0 when there is none).
pub fn xattr_icount(ibody_size: u64) -> Option<u16> {
    if ibody_size == 0 {
        return Some(0);
    }
    u16::try_from((ibody_size - XATTR_HEADER_SIZE) / 4 + 1).ok()
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_encoding_matches_kernel_new_encode_dev() {
        // (major, minor, expected) — values from the kernel's new_encode_dev() formula,
        // cross-checked with glibc makedev() for majors/minors below 2^8 / 2^20.
        let table = [
            (1, 3, 0x0000_0103),          // /dev/null
            (8, 0, 0x0000_0800),          // sda
            (259, 0, 0x0001_0300),        // nvme0n1
            (4095, 0xfffff, 0xffff_ffff), // largest encodable
            (10, 0x1234, 0x0120_0a34),    // minor above 8 bits
        ];
        for (major, minor, want) in table {
            assert_eq!(encode_dev(major, minor), want, "{major}:{minor}");
            let dev = encode_dev(major, minor);
            assert_eq!((dev & 0xfff00) >> 8, major, "decode major");
            assert_eq!(
                (dev & 0xff) | ((dev >> 12) & 0xfff00),
                minor,
                "decode minor"
            );
        }
    }

    #[test]
    fn xattr_icount_table() {
        for (size, want) in [(0, Some(0)), (12, Some(1)), (16, Some(2)), (32, Some(6))] {
            assert_eq!(xattr_icount(size), want, "{size}");
        }
        assert_eq!(xattr_icount(12 + 4 * 65534), Some(65535));
        assert_eq!(xattr_icount(12 + 4 * 65535), None);
    }

    #[test]
    fn superblock_field_offsets() {
        let sb = SuperBlock {
            root_nid: 36,
            inos: 7,
            build_time: 0x1122_3344,
            blocks: 9,
            uuid: [0xab; 16],
            volume_name: *b"root\0\0\0\0\0\0\0\0\0\0\0\0",
        };
        let b = sb.encode();
        assert_eq!(b[0..4], [0xe2, 0xe1, 0xf5, 0xe0]);
        assert_eq!(b[12], 12);
        assert_eq!(b[14..16], [36, 0]);
        assert_eq!(b[16], 7);
        assert_eq!(b[24..28], [0x44, 0x33, 0x22, 0x11]);
        assert_eq!(b[36], 9);
        assert_eq!(b[48..64], [0xab; 16]);
        assert_eq!(&b[64..68], b"root");
        assert!(b[80..].iter().all(|&x| x == 0));
    }
}
