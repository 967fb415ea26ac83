//! The newc cpio archives systemd-stub generates for sections it passes to the kernel
//! (`pack_cpio_literal` in systemd's `src/boot/cpio.c`, the same in 252, 254 and 257):
//! one directory, one file in it, the trailer. Every header + name and every file body is
//! NUL-padded to 4 bytes relative to the archive start.

/// Appends a newc header (magic and 13 fields of 8 lowercase hex digits).
fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: u32, name_size: u32) {
    out.extend_from_slice(b"070701");
    for v in [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, name_size, 0] {
        out.extend_from_slice(format!("{v:08x}").as_bytes());
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The stub's fixed trailer record: inode 0, nlink 1, name size `0000000B` (upper-case B as
/// the stub writes it), `TRAILER!!!` and four NULs.
const TRAILER: &[u8] = b"070701\
00000000000000000000000000000000\
00000001\
000000000000000000000000000000000000000000000000\
0000000B\
00000000\
TRAILER!!!\0\0\0\0";

/// `pack_cpio_literal(data, dir, file, dir_mode 0555, access_mode 0444)`: directory `dir`
/// (inode 1, mode 040555), file `dir/file` (inode 2, mode 0100444) holding `data`, trailer.
/// `dir` must be a single path component (the stub's callers all use `.extra`).
pub fn pack_literal(data: &[u8], dir: &str, file: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 256);
    header(&mut out, 1, 0o040_555, 0, dir.len() as u32 + 1);
    out.extend_from_slice(dir.as_bytes());
    out.push(0);
    pad4(&mut out);
    let name = format!("{dir}/{file}");
    header(
        &mut out,
        2,
        0o100_444,
        data.len() as u32,
        name.len() as u32 + 1,
    );
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(&mut out);
    out.extend_from_slice(data);
    pad4(&mut out);
    out.extend_from_slice(TRAILER);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_is_the_stubs_124_bytes() {
        assert_eq!(TRAILER.len(), 6 + 13 * 8 + 10 + 4);
        assert_eq!(&TRAILER[6 + 11 * 8..6 + 12 * 8], b"0000000B");
    }

    #[test]
    fn layout_of_a_small_archive() {
        let a = pack_literal(b"ID=x\n", ".extra", "os-release");
        // dir: header 110 + ".extra\0" 7 = 117 → 120; file: header at 120, name at 230 (18
        // bytes), data at 248, padded to 256.
        assert_eq!(&a[..6], b"070701");
        assert_eq!(&a[6..14], b"00000001");
        assert_eq!(&a[14..22], b"0000416d"); // 040555
        assert_eq!(&a[110..117], b".extra\0");
        assert_eq!(&a[120..126], b"070701");
        assert_eq!(&a[120 + 14..120 + 22], b"00008124"); // 0100444
        assert_eq!(&a[120 + 54..120 + 62], b"00000005"); // size
        assert_eq!(&a[120 + 94..120 + 102], b"00000012"); // name size 18
        assert_eq!(&a[230..248], b".extra/os-release\0");
        assert_eq!(&a[248..256], b"ID=x\n\0\0\0");
        assert_eq!(a.len(), 256 + TRAILER.len());
        // Verified against a real boot: sha256 of .initrd ‖ pad ‖ this archive for the
        // fixture's os-release matched the kernel's PCR 9 initrd event (257 stub).
    }
}
