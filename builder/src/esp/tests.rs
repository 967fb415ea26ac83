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
    let fs = FileSystem::new(ReadOnly(std::io::Cursor::new(img)), FsOptions::new()).unwrap();
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
        format!("{err:#}").contains("opening EFI/BOOT/NOPE.EFI"),
        "{err:#}"
    );
}
