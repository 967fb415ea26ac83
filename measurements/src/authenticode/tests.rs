use super::*;
use crate::pe::synth::SynthPe;

const UNALIGNED: &[u8] = include_bytes!("../../../fixtures/authenticode/unaligned.efi");
const TRAILING: &[u8] = include_bytes!("../../../fixtures/authenticode/trailing.efi");
const SIGNED: &[u8] = include_bytes!("../../../fixtures/authenticode/signed.efi");
const PE32: &[u8] = include_bytes!("../../../fixtures/authenticode/pe32.efi");

fn hex_of(data: &[u8], bank: Bank) -> String {
    digest_of(data, bank).unwrap().to_hex()
}

fn padded8(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(8) * 8, 0);
    v
}

/// Reference values from `fixtures/authenticode/README.md` (pesign 0.112, osslsigncode 2.9).
#[test]
fn known_answers_from_pesign_and_osslsigncode() {
    let cases: &[(&str, &[u8], Bank, &str)] = &[
        // pesign hashes the file as it is, like edk2.
        ("unaligned (pesign)", UNALIGNED, Bank::Sha256, "a7704638a6af002d3a10882f14aa5ea2a4e19c0e86b6d22451822d1b69b0c617"),
        ("trailing (osslsigncode)", TRAILING, Bank::Sha256, "6c136525fa4038338cbd776d48bccaf985c03ff0f67db62800dcea6d4bfbe062"),
        ("trailing (osslsigncode)", TRAILING, Bank::Sha384, "c0f813094e524214cf652ac9b53b3cf2a7fdfb78c0e4e9759a5824737f881d8490be63e2e56a05fc56cfbf663f6084ce"),
        ("signed: certificate table excluded", SIGNED, Bank::Sha256, "6c136525fa4038338cbd776d48bccaf985c03ff0f67db62800dcea6d4bfbe062"),
        ("signed", SIGNED, Bank::Sha384, "c0f813094e524214cf652ac9b53b3cf2a7fdfb78c0e4e9759a5824737f881d8490be63e2e56a05fc56cfbf663f6084ce"),
        ("pe32 (pesign, osslsigncode)", PE32, Bank::Sha256, "41b17c1ca15b5c1bc374905e4d45a2909a6d694a1a535ecab1a88fe34b027f22"),
        ("pe32 (osslsigncode)", PE32, Bank::Sha384, "0854fe33b5f243dff6fad190dbfa659ca99c0fbbcfb6f3faf610e50cca955e50e9617b4c5a9633c5fea9cf1ab01ff755"),
    ];
    for (what, data, bank, want) in cases {
        assert_eq!(hex_of(data, *bank), *want, "{what} {bank}");
    }
}

/// osslsigncode pads to 8 bytes before hashing (as every signer does): our digest of the padded
/// file equals its value, and differs from the unpadded (firmware) digest.
#[test]
fn unaligned_file_hashes_differently_once_padded() {
    assert_eq!(UNALIGNED.len() % 8, 5);
    let padded = padded8(UNALIGNED);
    assert_eq!(
        hex_of(&padded, Bank::Sha256),
        "1011082f690440bc92675636ce86a8ce9a0435d5005e49ec1b315acbf6125984"
    );
    assert_eq!(
        hex_of(&padded, Bank::Sha384),
        "7514b8b9da108c77ade84f4436a9a919ec9f76b4e54ea6225ce919b5fdcb2c44cff70fe57e2cd1a8be835dd9d187a655"
    );
    assert_ne!(
        hex_of(UNALIGNED, Bank::Sha256),
        hex_of(&padded, Bank::Sha256)
    );
}

#[test]
fn ranges_skip_checksum_and_certificate_entry_and_sort_sections() {
    let pe = Pe::parse(TRAILING).unwrap();
    let r = hashed_ranges(&pe).unwrap();
    let ck = pe.offsets.check_sum;
    let cert = pe.offsets.data_directory(4);
    assert_eq!(r[0], 0..ck);
    assert_eq!(r[1], ck + 4..cert);
    assert_eq!(r[2], cert + 8..0x200);
    // .data is stored first in the file: sorted by PointerToRawData.
    assert_eq!(r[3], 0x200..0x400);
    assert_eq!(r[4], 0x400..0x800);
    assert_eq!(r[5], 0x800..0x830);
    assert_eq!(r.len(), 6);
}

/// With at most 4 data directories there is no certificate entry to skip and no certificate
/// size to subtract (edk2's `NumberOfRvaAndSizes <= EFI_IMAGE_DIRECTORY_ENTRY_SECURITY`).
#[test]
fn four_or_fewer_directories_have_no_certificate_entry() {
    let mut img = SynthPe::default()
        .section(".text", &[1u8; 0x10], 0x6000_0020)
        .build();
    img.extend_from_slice(b"tail");
    let dirs = 0x40 + 24 + 108;
    img[dirs..dirs + 4].copy_from_slice(&4u32.to_le_bytes());
    // The parser reads NumberOfRvaAndSizes; the optional header still has room for 16.
    let pe = Pe::parse(&img).unwrap();
    assert_eq!(pe.optional.data_directories.len(), 4);
    let ck = pe.offsets.check_sum;
    let want =
        Bank::Sha256.hash_pieces(&[&img[..ck], &img[ck + 4..0x400], &img[0x400..0x600], b"tail"]);
    assert_eq!(digest(&pe, Bank::Sha256).unwrap(), want);
}

#[test]
fn broken_layouts_are_errors_not_panics() {
    let base = SynthPe::default()
        .section(".text", &[1u8; 0x10], 0x6000_0020)
        .build();
    let set =
        |img: &mut Vec<u8>, at: usize, v: u32| img[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let opt = 0x40 + 24;
    let table = 0x148;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "SizeOfHeaders past EOF",
            {
                let mut i = base.clone();
                set(&mut i, opt + 60, 0x10_0000);
                i
            },
            "headers after the certificate entry",
        ),
        (
            "SizeOfHeaders before the directories",
            {
                let mut i = base.clone();
                set(&mut i, opt + 60, 0x80);
                i
            },
            "headers after the certificate entry",
        ),
        (
            "section past EOF",
            {
                let mut i = base.clone();
                set(&mut i, table + 16, 0x1_0000);
                i
            },
            "section .text data",
        ),
        (
            "pointer overflow",
            {
                let mut i = base.clone();
                set(&mut i, table + 20, u32::MAX);
                i
            },
            "section .text data",
        ),
        (
            "certificate table larger than the tail",
            {
                let mut i = base.clone();
                i.extend_from_slice(&[0; 8]);
                set(&mut i, opt + 112 + 36, 0x100);
                i
            },
            "certificate table",
        ),
        ("truncated", base[..0x90].to_vec(), "runs past the end"),
    ];
    for (what, img, want) in cases {
        let err = digest_of(&img, Bank::Sha256).unwrap_err().to_string();
        assert!(err.contains(want), "{what}: {err}");
    }
}

#[test]
fn trailing_data_equal_to_certificate_table_is_not_hashed() {
    let mut img = SynthPe::default()
        .section(".text", &[1u8; 0x10], 0x6000_0020)
        .build();
    let plain = digest_of(&img, Bank::Sha256).unwrap();
    let end = img.len() as u32;
    img.extend_from_slice(&[9u8; 0x18]);
    let opt = 0x40 + 24;
    img[opt + 112 + 32..opt + 112 + 36].copy_from_slice(&end.to_le_bytes());
    img[opt + 112 + 36..opt + 112 + 40].copy_from_slice(&0x18u32.to_le_bytes());
    assert_eq!(digest_of(&img, Bank::Sha256).unwrap(), plain);
}
