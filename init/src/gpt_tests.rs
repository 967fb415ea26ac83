use super::*;
use crate::guid::{DPS_ROOT_VERITY_X86_64, DPS_ROOT_X86_64};

const A: Guid = Guid([0x11; 16]);
const B: Guid = Guid([0x22; 16]);

/// Builds a primary header sector and entry array the way a GPT writer does.
struct Image {
    header: Vec<u8>,
    entries: Vec<u8>,
}

fn entry(type_guid: Guid, part_guid: Guid, first: u64, last: u64) -> Vec<u8> {
    let mut e = vec![0u8; 128];
    e[0..16].copy_from_slice(&type_guid.to_gpt_bytes());
    e[16..32].copy_from_slice(&part_guid.to_gpt_bytes());
    e[32..40].copy_from_slice(&first.to_le_bytes());
    e[40..48].copy_from_slice(&last.to_le_bytes());
    e[48..56].copy_from_slice(&(1u64 << 60).to_le_bytes());
    e
}

fn image(slots: &[Option<Vec<u8>>]) -> Image {
    let mut entries = vec![0u8; 128 * 128];
    for (i, slot) in slots.iter().enumerate() {
        if let Some(e) = slot {
            entries[i * 128..(i + 1) * 128].copy_from_slice(e);
        }
    }
    let mut h = vec![0u8; 512];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&1u64.to_le_bytes());
    h[32..40].copy_from_slice(&2047u64.to_le_bytes());
    h[56..72].copy_from_slice(&Guid([0x33; 16]).to_gpt_bytes());
    h[72..80].copy_from_slice(&2u64.to_le_bytes());
    h[80..84].copy_from_slice(&128u32.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    h[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
    let mut img = Image { header: h, entries };
    reseal(&mut img.header);
    img
}

fn reseal(h: &mut [u8]) {
    h[16..20].fill(0);
    let size = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
    let crc = crc32(&h[..size.min(h.len())]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
}

fn two_parts() -> Image {
    image(&[
        Some(entry(DPS_ROOT_X86_64, A, 2048, 4095)),
        None,
        Some(entry(DPS_ROOT_VERITY_X86_64, B, 4096, 4159)),
    ])
}

#[test]
fn crc32_known_answer() {
    // The standard CRC-32 check value (also `python3 -c 'import zlib; print(hex(zlib.crc32(b"123456789")))'`).
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn parses_used_entries_with_linux_numbers() {
    let img = two_parts();
    let h = parse_header(&img.header).unwrap();
    assert_eq!((h.my_lba, h.alternate_lba, h.entries_lba), (1, 2047, 2));
    assert_eq!(h.disk_guid, Guid([0x33; 16]));
    let parts = parse_entries(&h, &img.entries).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].number, 1);
    assert_eq!(parts[0].type_guid, DPS_ROOT_X86_64);
    assert_eq!(parts[0].part_guid, A);
    assert_eq!((parts[0].first_lba, parts[0].last_lba), (2048, 4095));
    assert_eq!(parts[0].attributes, 1 << 60);
    assert_eq!(parts[1].number, 3);
    assert_eq!(parts[1].type_guid, DPS_ROOT_VERITY_X86_64);
}

#[test]
fn header_size_beyond_92_is_covered_by_the_crc() {
    let mut img = two_parts();
    img.header[12..16].copy_from_slice(&96u32.to_le_bytes());
    img.header[92] = 0xaa;
    reseal(&mut img.header);
    assert!(parse_header(&img.header).is_ok());
    img.header[93] = 1; // inside the covered range: CRC must now fail
    assert!(matches!(
        parse_header(&img.header),
        Err(GptError::HeaderCrc { .. })
    ));
}

type Mutation = fn(&mut Image);

#[test]
fn rejects_malformed_headers() {
    let cases: [(&str, Mutation, &str); 8] = [
        ("short", |i| i.header.truncate(91), "need 92 bytes"),
        ("signature", |i| i.header[0] = b'X', "EFI PART"),
        ("crc", |i| i.header[40] ^= 1, "header CRC32"),
        (
            "size<92",
            |i| {
                i.header[12..16].copy_from_slice(&91u32.to_le_bytes());
                reseal(&mut i.header)
            },
            "header size 91",
        ),
        (
            "size>sector",
            |i| {
                i.header[12..16].copy_from_slice(&513u32.to_le_bytes());
                reseal(&mut i.header)
            },
            "header size 513",
        ),
        (
            "entry size",
            |i| {
                i.header[84..88].copy_from_slice(&100u32.to_le_bytes());
                reseal(&mut i.header)
            },
            "entry size 100",
        ),
        (
            "entry size 0",
            |i| {
                i.header[84..88].copy_from_slice(&0u32.to_le_bytes());
                reseal(&mut i.header)
            },
            "entry size 0",
        ),
        (
            "huge array",
            |i| {
                i.header[80..84].copy_from_slice(&u32::MAX.to_le_bytes());
                reseal(&mut i.header)
            },
            "exceeds",
        ),
    ];
    for (name, mutate, needle) in cases {
        let mut img = two_parts();
        mutate(&mut img);
        let err = parse_header(&img.header).expect_err(name);
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }
}

#[test]
fn rejects_malformed_entry_arrays() {
    let cases: [(&str, Mutation, &str); 3] = [
        (
            "truncated",
            |i| i.entries.truncate(128 * 127),
            "need 16384 bytes, have 16256",
        ),
        ("crc", |i| i.entries[5] ^= 1, "entry array CRC32"),
        (
            "range",
            |i| {
                *i = image(&[Some(entry(DPS_ROOT_X86_64, A, 10, 9))]);
            },
            "partition 1: last LBA 9 precedes first LBA 10",
        ),
    ];
    for (name, mutate, needle) in cases {
        let mut img = two_parts();
        mutate(&mut img);
        let h = parse_header(&img.header).unwrap();
        let err = parse_entries(&h, &img.entries).expect_err(name);
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }
}

#[test]
fn hand_made_header_with_zero_entry_size_is_an_error_not_a_panic() {
    let img = two_parts();
    let mut h = parse_header(&img.header).unwrap();
    h.entry_size = 0;
    assert_eq!(
        parse_entries(&h, &img.entries),
        Err(GptError::BadEntrySize(0))
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Cheap deterministic fuzzing: xorshift bytes, plus a valid image with one byte flipped.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in [0usize, 1, 91, 92, 93, 512] {
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = parse_header(&bytes);
    }
    let base = two_parts();
    for i in 0..512 {
        let mut img = Image {
            header: base.header.clone(),
            entries: base.entries.clone(),
        };
        img.header[i] ^= next() as u8 | 1;
        reseal(&mut img.header);
        if let Ok(h) = parse_header(&img.header) {
            let _ = parse_entries(&h, &img.entries);
        }
    }
}
