use super::*;

const MIB: u64 = 1024 * 1024;

#[test]
fn dps_guids_in_text_order() {
    let cases = [
        (TYPE_ESP, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
        (TYPE_ROOT_X86_64, "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
        (
            TYPE_ROOT_VERITY_X86_64,
            "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
        ),
    ];
    for (g, text) in cases {
        assert_eq!(guid_to_string(&g), text);
        assert_eq!(guid_from_str(&text.to_uppercase()).unwrap(), g);
    }
}

/// The ESP type as it appears on disk (e.g. `xxd` of any UEFI disk's entry array).
#[test]
fn mixed_endian_known_answer() {
    let disk = hex::decode("28732ac11ff8d211ba4b00a0c93ec93b").unwrap();
    assert_eq!(to_mixed_endian(TYPE_ESP).as_slice(), disk.as_slice());
    assert_eq!(
        from_mixed_endian(to_mixed_endian(TYPE_ROOT_X86_64)),
        TYPE_ROOT_X86_64
    );
}

#[test]
fn bad_guids_are_refused() {
    for s in [
        "",
        "c12a7328f81f11d2ba4b00a0c93ec93b",
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93",
        "g12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    ] {
        assert!(guid_from_str(s).is_err(), "{s:?}");
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    disk: PathBuf,
    parts: Vec<PartSpec>,
    data: Vec<Vec<u8>>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [100 * 1024, 3 * MIB as usize + 1, 5000];
    let specs = [
        (TYPE_ESP, "esp", 0),
        (TYPE_ROOT_X86_64, "root-x86-64", ATTR_READ_ONLY),
        (
            TYPE_ROOT_VERITY_X86_64,
            "root-x86-64-verity",
            ATTR_READ_ONLY,
        ),
    ];
    let mut parts = Vec::new();
    let mut data = Vec::new();
    for (i, ((ty, name, attrs), size)) in specs.into_iter().zip(sizes).enumerate() {
        let bytes: Vec<u8> = (0..size).map(|j| (j * (i + 3) % 253) as u8 + 1).collect();
        let source = dir.path().join(name);
        std::fs::write(&source, &bytes).unwrap();
        let unique = [i as u8 + 1; 16];
        parts.push(PartSpec {
            type_guid: ty,
            unique_guid: unique,
            name: name.into(),
            source: Source::File(source),
            attrs,
        });
        data.push(bytes);
    }
    Fixture {
        disk: dir.path().join("disk.raw"),
        _dir: dir,
        parts,
        data,
    }
}

const DISK_GUID: [u8; 16] = [
    0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
];

#[test]
fn assembles_aligned_partitions_and_reads_them_back() {
    let f = fixture();
    let placed = assemble(&f.disk, &f.parts, DISK_GUID, MIB).unwrap();
    let want = [(2048, 4095), (4096, 12287), (12288, 14335)];
    let got: Vec<_> = placed.iter().map(|p| (p.first_lba, p.last_lba)).collect();
    assert_eq!(got, want);
    assert_eq!(placed[1].size, 4 * MIB);
    let image = std::fs::read(&f.disk).unwrap();
    assert_eq!(image.len() as u64, 8 * MIB);
    for (p, bytes) in placed.iter().zip(&f.data) {
        let at = p.offset as usize;
        assert!(
            image[at..at + bytes.len()] == bytes[..],
            "contents at {at:#x}"
        );
        assert!(image[at + bytes.len()..at + p.size as usize]
            .iter()
            .all(|&b| b == 0));
    }
    let table = read_table(std::io::Cursor::new(&image)).unwrap();
    assert_eq!(table.disk_guid, DISK_GUID);
    assert_eq!(
        (table.first_usable_lba, table.last_usable_lba),
        (34, 8 * 2048 - 34)
    );
    assert_eq!(table.backup_lba, 8 * 2048 - 1);
    for ((info, spec), p) in table.partitions.iter().zip(&f.parts).zip(&placed) {
        assert_eq!(
            (info.type_guid, info.unique_guid),
            (spec.type_guid, spec.unique_guid)
        );
        assert_eq!((&info.name, info.attrs), (&spec.name, spec.attrs));
        assert_eq!(
            (info.first_lba, info.last_lba, info.offset, info.size),
            (p.first_lba, p.last_lba, p.offset, p.size)
        );
    }
    // Protective MBR: type 0xEE from LBA 1 over the whole disk, signature 55 AA.
    assert_eq!(image[0x1c2], 0xee);
    assert_eq!(&image[0x1c6..0x1ca], &1u32.to_le_bytes());
    assert_eq!(&image[0x1ca..0x1ce], &(8 * 2048 - 1u32).to_le_bytes());
    assert_eq!(&image[0x1fe..0x200], &[0x55, 0xaa]);
    // Backup header in the last LBA; entries stored mixed-endian.
    assert_eq!(&image[image.len() - 512..image.len() - 504], b"EFI PART");
    assert_eq!(&image[0x400..0x410], &to_mixed_endian(TYPE_ESP));
}

#[test]
fn output_is_deterministic() {
    let f = fixture();
    assemble(&f.disk, &f.parts, DISK_GUID, MIB).unwrap();
    let a = std::fs::read(&f.disk).unwrap();
    assemble(&f.disk, &f.parts, DISK_GUID, MIB).unwrap();
    assert!(a == std::fs::read(&f.disk).unwrap());
}

#[test]
fn small_alignment_packs_partitions() {
    let f = fixture();
    let placed = assemble(&f.disk, &f.parts, DISK_GUID, 4096).unwrap();
    assert_eq!(
        placed[0].first_lba, 40,
        "first 4 KiB boundary after LBA 33, as systemd-repart"
    );
    assert_eq!(placed[1].first_lba, 40 + 200);
}

#[test]
fn refusals_are_clear() {
    let f = fixture();
    let mut long = f.parts.clone();
    long[0].name = "x".repeat(37);
    let mut empty = f.parts.clone();
    std::fs::write(f.disk.with_file_name("empty"), b"").unwrap();
    empty[2].source = Source::File(f.disk.with_file_name("empty"));
    let mut missing = f.parts.clone();
    missing[1].source = Source::File(f.disk.with_file_name("nope"));
    let cases = [
        ("align", f.parts.clone(), 1000, "alignment 1000"),
        ("no parts", Vec::new(), MIB, "1 to 128 partitions"),
        ("long name", long, MIB, "37 UTF-16 code units"),
        ("empty", empty, MIB, "the source is empty"),
        ("missing", missing, MIB, "partition \"root-x86-64\""),
    ];
    for (name, parts, align, want) in cases {
        let err = assemble(&f.disk, &parts, DISK_GUID, align).expect_err(name);
        assert!(format!("{err:#}").contains(want), "{name}: {err:#}");
    }
}

#[test]
fn reader_checks_signature_and_crcs() {
    let f = fixture();
    assemble(&f.disk, &f.parts, DISK_GUID, MIB).unwrap();
    let good = std::fs::read(&f.disk).unwrap();
    let flip = |at: usize| {
        let mut d = good.clone();
        d[at] ^= 1;
        d
    };
    let cases = [
        ("signature", flip(0x200), "expected \"EFI PART\""),
        ("header crc", flip(0x200 + 40), "GPT header CRC32"),
        ("array crc", flip(0x400 + 60), "GPT entry array CRC32"),
        ("short", good[..0x300].to_vec(), "reading the GPT header"),
    ];
    for (name, data, want) in cases {
        let err = read(std::io::Cursor::new(data)).expect_err(name);
        assert!(format!("{err:#}").contains(want), "{name}: {err:#}");
    }
}

#[test]
fn in_place_contents_are_kept_and_files_copied() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("disk.raw");
    let esp = dir.path().join("esp");
    std::fs::write(&esp, vec![0xe5; 5000]).unwrap();
    let (placed, _) = lay_out(&[5000, 3000], 1 << 20).unwrap();
    // Written before assembling, at the offset lay_out gives the second partition.
    let f = std::fs::File::create(&out).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x42; 3000], placed[1].offset).unwrap();
    drop(f);
    let parts = [
        PartSpec {
            type_guid: TYPE_ESP,
            unique_guid: [1; 16],
            name: "esp".into(),
            source: Source::File(esp),
            attrs: 0,
        },
        PartSpec {
            type_guid: TYPE_ROOT_X86_64,
            unique_guid: [2; 16],
            name: "root".into(),
            source: Source::InPlace(3000),
            attrs: 0,
        },
    ];
    let got = assemble(&out, &parts, [3; 16], 1 << 20).unwrap();
    assert_eq!(got, placed);
    let bytes = std::fs::read(&out).unwrap();
    let at = |p: &Placed, n: usize| bytes[p.offset as usize..p.offset as usize + n].to_vec();
    assert_eq!(at(&got[0], 5000), vec![0xe5; 5000]);
    assert_eq!(at(&got[1], 3000), vec![0x42; 3000]);
    assert_eq!(read(std::fs::File::open(&out).unwrap()).unwrap().len(), 2);
}
