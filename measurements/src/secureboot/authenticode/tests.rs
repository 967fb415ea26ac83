use std::time::SystemTime;

use super::*;
use crate::secureboot::cert;
use crate::signer::RsaKey;

fn key_and_cert(name: &str) -> (RsaKey, Certificate) {
    let k = RsaKey::generate(&mut rand_core::OsRng, 2048, name).unwrap();
    let c = cert::self_signed(&k, name, &[0x42; 12], SystemTime::now(), 20, true).unwrap();
    (k, c)
}

fn unsigned_image() -> Vec<u8> {
    let mut v = crate::pe::synth::SynthPe::default()
        .section(
            ".text",
            &[0x90; 1000],
            crate::pe::SCN_CNT_CODE | crate::pe::SCN_MEM_READ,
        )
        .section(".data", &[7; 333], crate::pe::SCN_CNT_INITIALIZED_DATA)
        .build();
    // Trailing data whose length is not a multiple of 8: signing pads it.
    v.extend_from_slice(b"tail!");
    v
}

#[test]
fn signing_appends_an_aligned_table_and_keeps_the_digest() {
    let (k, c) = key_and_cert("db");
    let image = unsigned_image();
    let signed = sign(&image, &c, &k).unwrap();
    // Deterministic.
    assert_eq!(signed, sign(&image, &c, &k).unwrap());
    let (range, entries) = certificate_table(&signed).unwrap().unwrap();
    assert_eq!(range.start % 8, 0);
    assert_eq!(range.end, signed.len());
    assert_eq!(signed.len() % 8, 0);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].revision, WIN_CERT_REVISION_2_0);
    assert_eq!(entries[0].cert_type, WIN_CERT_TYPE_PKCS_SIGNED_DATA);
    // The Authenticode digest of the signed file equals that of the padded unsigned file.
    let mut padded = image.clone();
    padded.resize(image.len().next_multiple_of(8), 0);
    assert_eq!(
        crate::authenticode::digest_of(&signed, Bank::Sha256).unwrap(),
        crate::authenticode::digest_of(&padded, Bank::Sha256).unwrap()
    );
    // The checksum field holds the PE checksum.
    let pe = Pe::parse(&signed).unwrap();
    assert_eq!(
        pe.optional.check_sum,
        pe_checksum(&signed, pe.offsets.check_sum)
    );
    assert_ne!(pe.optional.check_sum, 0);
    // The signature carries our certificate.
    assert_eq!(signer_certificates(&signed).unwrap(), vec![vec![c.clone()]]);
}

#[test]
fn resigning_replaces_the_signature() {
    let (k1, c1) = key_and_cert("one");
    let (k2, c2) = key_and_cert("two");
    let image = unsigned_image();
    let once = sign(&image, &c1, &k1).unwrap();
    let again = sign(&once, &c2, &k2).unwrap();
    assert_eq!(again, sign(&image, &c2, &k2).unwrap());
    assert_eq!(signer_certificates(&again).unwrap(), vec![vec![c2]]);
    // Stripping gives the padded image back, checksum zeroed.
    let mut want = image.clone();
    let at = Pe::parse(&image).unwrap().offsets.check_sum;
    want[at..at + 4].fill(0);
    want.resize(image.len().next_multiple_of(8), 0);
    assert!(
        strip(&once).unwrap() == want,
        "strip did not restore the image"
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let (k1, _) = key_and_cert("one");
    let (_, c2) = key_and_cert("two");
    let e = sign(&unsigned_image(), &c2, &k1).unwrap_err().to_string();
    assert!(e.contains("does not belong to the key"), "{e}");
}

#[test]
fn truncated_or_misplaced_certificate_tables_are_errors() {
    let (k, c) = key_and_cert("db");
    let signed = sign(&unsigned_image(), &c, &k).unwrap();
    let e = sign(&signed[..signed.len() - 100], &c, &k)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("runs past the end") && e.contains("truncated"),
        "{e}"
    );
    let mut trailing = signed.clone();
    trailing.extend_from_slice(&[0; 16]);
    let e = sign(&trailing, &c, &k).unwrap_err().to_string();
    assert!(e.contains("not at the end of the file"), "{e}");
    // dwLength larger than the table.
    let (range, _) = certificate_table(&signed).unwrap().unwrap();
    let mut bad = signed.clone();
    bad[range.start..range.start + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let e = certificate_table(&bad).unwrap_err().to_string();
    assert!(
        e.contains("dwLength") && e.contains(&format!("{:#x}", range.start)),
        "{e}"
    );
}

#[test]
fn pe_checksum_matches_a_known_value() {
    // The checksum of 4 bytes 01 02 03 04 with the field outside: 0x0201 + 0x0403 + len 4.
    assert_eq!(pe_checksum(&[1, 2, 3, 4], 100), 0x0201 + 0x0403 + 4);
    // Carries fold back into 16 bits.
    assert_eq!(pe_checksum(&[0xff, 0xff, 0x02, 0x00], 100), 0x0002 + 4);
    // The field itself is skipped.
    assert_eq!(pe_checksum(&[9, 9, 9, 9, 1, 0], 0), 1 + 6);
}
