use super::synth::SynthPe;
use super::*;

fn sample() -> Vec<u8> {
    SynthPe::default()
        .section(".text", &[0xcc; 0x300], 0x6000_0020)
        .section(".sbat", b"sbat,1,x\n", 0x4000_0040)
        .section(
            ".sdmagic",
            b"#### LoaderInfo: systemd-stub 257.13-1~deb13u1 ####\0",
            0x4000_0040,
        )
        .build()
}

#[test]
fn parses_headers_and_sections() {
    let data = sample();
    let pe = Pe::parse(&data).unwrap();
    assert_eq!(pe.e_lfanew, 0x40);
    assert_eq!(pe.coff.machine, 0x8664);
    assert_eq!(pe.coff.number_of_sections, 3);
    assert_eq!(pe.optional.magic, PE32_PLUS_MAGIC);
    assert_eq!(
        (pe.optional.section_alignment, pe.optional.file_alignment),
        (0x1000, 0x200)
    );
    assert_eq!(pe.optional.size_of_headers, 0x400);
    assert_eq!(pe.optional.check_sum, 0xabcd);
    assert_eq!(pe.optional.dll_characteristics, 0x160);
    assert_eq!(pe.optional.data_directories.len(), 16);
    assert_eq!(pe.offsets.check_sum, 0x40 + 24 + 64);
    assert_eq!(pe.offsets.section_table, 0x148);
    let names: Vec<_> = pe.sections.iter().map(Section::name_lossy).collect();
    assert_eq!(names, [".text", ".sbat", ".sdmagic"]);
    let text = &pe.sections[0];
    assert_eq!((text.virtual_size, text.virtual_address), (0x300, 0x1000));
    assert_eq!(
        (text.size_of_raw_data, text.pointer_to_raw_data),
        (0x400, 0x400)
    );
    assert_eq!(text.header_offset, 0x148);
    assert_eq!(pe.section_data(".sbat").unwrap(), Some(&b"sbat,1,x\n"[..]));
    assert_eq!(pe.raw_data(&pe.sections[1]).unwrap().len(), 0x200);
    assert_eq!(pe.section_data(".nope").unwrap(), None);
    assert_eq!(pe.certificate_table(), None);
}

#[test]
fn stub_version_from_sdmagic() {
    let data = sample();
    let v = Pe::parse(&data).unwrap().stub_version().unwrap().unwrap();
    assert_eq!(
        v,
        StubVersion {
            version: "257.13-1~deb13u1".into(),
            major: 257
        }
    );
}

/// Input and expected (version, major), if valid.
type SdmagicCase = (&'static [u8], Option<(&'static str, u32)>);

#[test]
fn sdmagic_table() {
    let cases: &[SdmagicCase] = &[
        (
            b"#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####\0",
            Some(("252.39-1~deb12u2", 252)),
        ),
        (
            b"#### LoaderInfo: systemd-stub 254.26-1~bpo12+1 ####",
            Some(("254.26-1~bpo12+1", 254)),
        ),
        (
            b"#### LoaderInfo: systemd-stub 258 ####\0\0\0",
            Some(("258", 258)),
        ),
        (b"#### LoaderInfo: systemd-boot 257 ####", None),
        (b"#### LoaderInfo: systemd-stub  ####", None),
        (b"#### LoaderInfo: systemd-stub v257 ####", None),
        (b"", None),
        (b"\xff\xfe", None),
    ];
    for (input, want) in cases {
        let got = parse_sdmagic(input).ok().map(|v| (v.version, v.major));
        let want = want.map(|(s, m)| (s.to_string(), m));
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn certificate_table_is_reported() {
    let mut pe = SynthPe::default().section(".text", &[1; 16], 0x6000_0020);
    pe.certificate_table = Some((0x600, 0x100));
    let data = pe.build();
    let dir = Pe::parse(&data).unwrap().certificate_table().unwrap();
    assert_eq!((dir.virtual_address, dir.size), (0x600, 0x100));
}

/// Sets a little-endian integer field in a copy of `data`.
fn patched(data: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    d[at..at + bytes.len()].copy_from_slice(bytes);
    d
}

#[test]
fn malformed_inputs_name_offset_and_expectation() {
    let good = sample();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "empty",
            Vec::new(),
            "DOS header magic at offset 0x0 (2 bytes) runs past the end",
        ),
        (
            "bad MZ",
            patched(&good, 0, b"ZM"),
            "DOS header magic at offset 0x0: expected \"MZ\"",
        ),
        (
            "short DOS header",
            good[..0x30].to_vec(),
            "e_lfanew at offset 0x3c",
        ),
        (
            "e_lfanew beyond",
            patched(&good, 0x3c, &0xffff_fff0u32.to_le_bytes()),
            "PE signature at offset 0xfffffff0",
        ),
        (
            "bad signature",
            patched(&good, 0x40, b"PX\0\0"),
            "PE signature at offset 0x40: expected",
        ),
        (
            "bad magic",
            patched(&good, 0x58, &0x107u16.to_le_bytes()),
            "optional header magic at offset 0x58: expected 0x10b",
        ),
        (
            "tiny optional header",
            patched(&good, 0x54, &8u16.to_le_bytes()),
            "SizeOfOptionalHeader at offset 0x54: expected at least 112",
        ),
        (
            "too many dirs",
            patched(&good, 0x58 + 108, &17u32.to_le_bytes()),
            "NumberOfRvaAndSizes at offset 0xc4: expected at most 16",
        ),
        (
            "zero alignment",
            patched(&good, 0x58 + 36, &0u32.to_le_bytes()),
            "FileAlignment at offset 0x7c: expected a non-zero power of two",
        ),
        (
            "section table past end",
            patched(&good, 0x46, &0xffffu16.to_le_bytes()),
            "section table at offset 0x148",
        ),
    ];
    for (name, data, want) in cases {
        let err = Pe::parse(&data).expect_err(name).to_string();
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn section_data_out_of_bounds_is_an_error() {
    let good = sample();
    // .sbat is the second header; point its data far past the end.
    let data = patched(&good, 0x148 + 40 + 20, &0x10_0000u32.to_le_bytes());
    let pe = Pe::parse(&data).unwrap();
    let err = pe.section_data(".sbat").unwrap_err().to_string();
    assert!(err.contains("section data at offset 0x100000"), "{err}");
}

#[test]
fn pe32_images_parse() {
    let mut data = sample();
    // Rewrite as PE32: magic, a 32-bit ImageBase at +28, NumberOfRvaAndSizes at +92.
    let opt = 0x58;
    data[opt..opt + 2].copy_from_slice(&PE32_MAGIC.to_le_bytes());
    data[opt + 28..opt + 32].copy_from_slice(&0x40_0000u32.to_le_bytes());
    data[opt + 92..opt + 96].copy_from_slice(&16u32.to_le_bytes());
    let pe = Pe::parse(&data).unwrap();
    assert_eq!(pe.optional.image_base, 0x40_0000);
    assert_eq!(pe.offsets.data_directories, opt + 96);
    assert_eq!(pe.offsets.section_table, 0x148);
}

/// Errors are fine, panics are bugs: every truncation and many corruptions of a valid image
/// must come back as `Ok` or `Err`.
#[test]
fn never_panics_on_truncation_or_corruption() {
    let good = sample();
    for len in 0..good.len() {
        let _ = Pe::parse(&good[..len]).map(|pe| probe(&pe));
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut d = good[..0x400].to_vec();
        let at = (state as usize >> 8) % d.len();
        d[at] = (state >> 40) as u8;
        let _ = Pe::parse(&d).map(|pe| probe(&pe));
    }
}

fn probe(pe: &Pe<'_>) {
    for s in &pe.sections {
        let _ = pe.raw_data(s);
        let _ = pe.contents(s);
    }
    let _ = pe.stub_version();
    let _ = pe.certificate_table();
}
