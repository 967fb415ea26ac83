use super::*;

const MIB: u64 = 1024 * 1024;

#[test]
fn dos_datetime_table() {
    // Expected values from `date -u -d @EPOCH`.
    let cases = [
        (0, (1980, 1, 1, 0, 0, 0)),
        (315_532_800, (1980, 1, 1, 0, 0, 0)),
        (951_825_599, (2000, 2, 29, 11, 59, 59)),
        (1_700_000_000, (2023, 11, 14, 22, 13, 20)),
        (4_107_542_399, (2100, 2, 28, 23, 59, 59)),
        (u64::MAX, (2107, 12, 31, 23, 59, 58)),
    ];
    for (epoch, (y, mo, d, h, mi, s)) in cases {
        let t = dos_datetime(epoch);
        let date = ((t.date >> 9) + 1980, (t.date >> 5) & 0xf, t.date & 0x1f);
        let time = (
            t.time >> 11,
            (t.time >> 5) & 0x3f,
            (t.time & 0x1f) * 2 + u16::from(t.tenth) / 100,
        );
        assert_eq!((date, time), ((y, mo, d), (h, mi, s)), "epoch {epoch}");
    }
}

fn sample(dir: &Path, name: &str, epoch: u64) -> Vec<u8> {
    let path = dir.join(name);
    let uki: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let files: [(&str, &[u8]); 2] = [
        ("EFI/BOOT/BOOTX64.EFI", &uki),
        ("EFI/nodeimg/info.txt", b"type1\n"),
    ];
    build(&path, 40 * MIB, &files, 0x1234_abcd, "esp", epoch).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn builds_readable_deterministic_fat32() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample(dir.path(), "a.img", 1_700_000_000);
    let b = sample(dir.path(), "b.img", 1_700_000_000);
    assert_eq!(a.len() as u64, 40 * MIB);
    assert!(a == b, "two builds differ");
    let c = sample(dir.path(), "c.img", 1_700_000_002);
    assert!(a != c, "the epoch must reach the image");
    let uki = read_file(std::io::Cursor::new(&a), "EFI/BOOT/BOOTX64.EFI").unwrap();
    assert_eq!(uki.len(), 300_000);
    assert_eq!(uki[1000], (1000 * 7 % 251) as u8);
    assert_eq!(
        read_file(std::io::Cursor::new(&a), "efi/boot/bootx64.efi").unwrap(),
        uki
    );
    // Boot sector: volume id at 0x43, label at 0x47, "FAT32   " at 0x52.
    assert_eq!(&a[0x43..0x47], &0x1234_abcdu32.to_le_bytes());
    assert_eq!(&a[0x47..0x52], b"ESP        ");
    assert_eq!(&a[0x52..0x5a], b"FAT32   ");
}

#[test]
fn every_entry_has_the_epoch_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample(dir.path(), "a.img", 1_700_000_000);
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(img), fatfs::FsOptions::new()).unwrap();
    // 2023-11-14 22:13:20 UTC
    let want = fatfs::DateTime {
        date: fatfs::Date {
            year: 2023,
            month: 11,
            day: 14,
        },
        time: fatfs::Time {
            hour: 22,
            min: 13,
            sec: 20,
            millis: 0,
        },
    };
    let mut seen = 0;
    let mut stack = vec![fs.root_dir()];
    while let Some(d) = stack.pop() {
        for e in d.iter().map(Result::unwrap) {
            if e.file_name() == "." || e.file_name() == ".." {
                continue;
            }
            assert_eq!(e.modified(), want, "{}", e.file_name());
            assert_eq!(e.created(), want, "{}", e.file_name());
            assert_eq!(e.accessed(), want.date, "{}", e.file_name());
            seen += 1;
            if e.is_dir() {
                stack.push(e.to_dir());
            }
        }
    }
    assert_eq!(seen, 5, "EFI, EFI/BOOT, BOOTX64.EFI, EFI/NODEIMG, INFO.TXT");
}

#[test]
fn refusals_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.img");
    let one: [(&str, &[u8]); 1] = [("EFI/BOOT/BOOTX64.EFI", b"x")];
    let twice: [(&str, &[u8]); 2] = [("A/B", b"x"), ("a/b", b"y")];
    // name, size, files, label, expected error
    type Case<'a> = (&'a str, u64, &'a [(&'a str, &'a [u8])], &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "unaligned",
            40 * MIB + 1,
            &one,
            "esp",
            "not a multiple of 512",
        ),
        (
            "too small",
            16 * MIB,
            &one,
            "esp",
            "below the FAT32 minimum",
        ),
        ("label chars", 40 * MIB, &one, "a.b", "bad FAT volume label"),
        (
            "label length",
            40 * MIB,
            &one,
            "twelve_chars",
            "bad FAT volume label",
        ),
        (
            "dotdot",
            40 * MIB,
            &[("EFI/../x", b"x")],
            "esp",
            "bad ESP path",
        ),
        (
            "absolute",
            40 * MIB,
            &[("/EFI/x", b"x")],
            "esp",
            "bad ESP path",
        ),
        ("duplicate", 40 * MIB, &twice, "esp", "B exists already"),
        (
            "long name",
            40 * MIB,
            &[("EFI/bootloader.efi", b"x")],
            "esp",
            "not an 8.3 name",
        ),
        (
            "file as dir",
            40 * MIB,
            &[("A", b"x"), ("A/B", b"y")],
            "esp",
            "A is a file",
        ),
    ];
    for (name, size, files, label, want) in cases {
        let err = build(&p, size, files, 1, label, 0).expect_err(name);
        assert!(format!("{err:#}").contains(want), "{name}: {err:#}");
    }
}

#[test]
fn read_file_names_the_missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample(dir.path(), "a.img", 0);
    let err = read_file(std::io::Cursor::new(img), "EFI/BOOT/NOPE.EFI").unwrap_err();
    assert!(
        format!("{err:#}")
            .contains("EFI/BOOT/NOPE.EFI is not in the FAT image (NOPE.EFI missing in /EFI/BOOT/)"),
        "{err:#}"
    );
}

/// Byte offset of the (first) FAT32 table entry of `cluster`, from the BPB.
fn fat_entry(img: &[u8], cluster: u32) -> usize {
    let reserved = u16::from_le_bytes([img[0x0e], img[0x0f]]) as usize;
    let bytes_per_sector = u16::from_le_bytes([img[0x0b], img[0x0c]]) as usize;
    reserved * bytes_per_sector + cluster as usize * 4
}

fn short_entry(img: &[u8], name: &[u8; 11]) -> usize {
    img.windows(11)
        .position(|w| w == name)
        .expect("directory entry")
}

/// A root directory whose first cluster is full and whose FAT entry points at itself would be
/// listed forever by a plain `fatfs` walk: here both lookups and listings stop with an error.
#[test]
fn a_cyclic_directory_chain_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cyclic.img");
    let names: Vec<String> = (0..40).map(|i| format!("F{i:02}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    build(&path, 40 * MIB, &files, 1, "esp", 0).unwrap();
    let mut img = std::fs::read(&path).unwrap();
    let root = u32::from_le_bytes(img[0x2c..0x30].try_into().unwrap());
    let fat = fat_entry(&img, root);
    img[fat..fat + 4].copy_from_slice(&root.to_le_bytes());
    let err = read_file(std::io::Cursor::new(&img), "EFI/BOOT/BOOTX64.EFI").unwrap_err();
    assert!(
        format!("{err:#}").contains("more than 65536 entries"),
        "{err:#}"
    );
    let err = list(std::io::Cursor::new(&img)).unwrap_err();
    assert!(
        format!("{err:#}").contains("more than 65536 entries"),
        "{err:#}"
    );
}

/// A file whose directory entry claims 4 GiB is refused before anything is allocated.
#[test]
fn a_file_larger_than_the_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = sample(dir.path(), "a.img", 0);
    let e = short_entry(&img, b"BOOTX64 EFI");
    img[e + 28..e + 32].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = read_file(std::io::Cursor::new(&img), "EFI/BOOT/BOOTX64.EFI").unwrap_err();
    let want = "EFI/BOOT/BOOTX64.EFI: 4294967295 bytes claimed, more than the FAT image's 41943040";
    assert!(format!("{err:#}").contains(want), "{err:#}");
    assert!(
        format!("{:#}", list(std::io::Cursor::new(&img)).unwrap_err()).contains("bytes claimed")
    );
}

/// A subdirectory entry pointing back at its parent's cluster makes the tree infinitely deep.
#[test]
fn a_directory_containing_itself_is_refused_by_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = sample(dir.path(), "a.img", 0);
    let boot = short_entry(&img, b"BOOT       ");
    let efi = short_entry(&img, b"EFI        ");
    // BOOT's first cluster (high word at +20, low word at +26) := EFI's.
    let (hi, lo) = (
        img[efi + 20..efi + 22].to_vec(),
        img[efi + 26..efi + 28].to_vec(),
    );
    img[boot + 20..boot + 22].copy_from_slice(&hi);
    img[boot + 26..boot + 28].copy_from_slice(&lo);
    let err = list(std::io::Cursor::new(&img)).unwrap_err();
    assert!(
        format!("{err:#}").contains("directories nested more than 16 deep in the FAT image"),
        "{err:#}"
    );
}

/// The listing has every directory and file with size and SHA-256.
#[test]
fn list_hashes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = sample(dir.path(), "a.img", 0);
    let l = list(std::io::Cursor::new(&img)).unwrap();
    assert_eq!((l.volume_id, l.label.as_str()), (0x1234_abcd, "ESP"));
    let keys: Vec<&str> = l.items.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "EFI",
            "EFI/BOOT",
            "EFI/BOOT/BOOTX64.EFI",
            "EFI/NODEIMG",
            "EFI/NODEIMG/INFO.TXT"
        ]
    );
    let want: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"type1\n").into();
    assert_eq!(
        l.items["EFI/NODEIMG/INFO.TXT"],
        Item::File {
            len: 6,
            sha256: Some(want)
        }
    );
    // Names only: the same items, no file read.
    let n = list_names(std::io::Cursor::new(&img)).unwrap();
    assert!(n.items.keys().eq(l.items.keys()));
    assert_eq!(
        n.items["EFI/NODEIMG/INFO.TXT"],
        Item::File {
            len: 6,
            sha256: None
        }
    );
}
