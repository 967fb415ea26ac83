use super::*;
use measurements::pe::synth::SynthPe;
use measurements::pe::DLL_CHARACTERISTICS_NX_COMPAT;

const SDMAGIC: &[u8] = b"#### LoaderInfo: systemd-stub 257.13-1~deb13u1 ####\0";
const STUB_SBAT: &[u8] =
    b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\
systemd-stub,1,The systemd Developers,systemd,257,https://systemd.io/\n";

/// Shaped like Debian's 257 stub: 6 sections, SectionAlignment 0x1000, headers 0x600.
fn stub257() -> SynthPe {
    SynthPe {
        size_of_headers: 0x600,
        ..SynthPe::default()
    }
    .section(".text", &[0xcc; 0x1234], 0x6000_0020)
    .section(".rodata", &[1; 0x100], 0x4000_0040)
    .section(".data", &[2; 0xc0], 0xc000_0040)
    .section(".sbat", STUB_SBAT, 0x4000_0040)
    .section(".sdmagic", SDMAGIC, 0x4000_0040)
    .section(".reloc", &[3; 0x88], 0x4200_0040)
}

/// Shaped like Debian's 252 stub: 0x200 alignments, e_lfanew 0x80, a trailing symbol table.
fn stub252() -> SynthPe {
    let mut strings = 12u32.to_le_bytes().to_vec();
    strings.extend_from_slice(b"symbols\0");
    SynthPe {
        e_lfanew: 0x80,
        section_alignment: 0x200,
        dll_characteristics: 0,
        symbols: Some((362, strings)),
        ..stub257()
    }
}

fn kernel(dll: u16) -> Vec<u8> {
    SynthPe {
        dll_characteristics: dll,
        major_image_version: 1,
        ..SynthPe::default()
    }
    .section(".setup", &[9; 0x3000], 0x4000_0040)
    .section(".text", &[8; 0x2345], 0x6000_0020)
    .build()
}

fn payload(linux: Vec<u8>) -> Sections {
    Sections {
        osrel: b"ID=test\nNAME=Test\n".to_vec(),
        cmdline: b"console=ttyS0 roothash=00ff".to_vec(),
        uname: b"6.1.0-test".to_vec(),
        linux,
        initrd: vec![7; 300_000],
        sbat_extra: None,
    }
}

fn names(pe: &Pe<'_>) -> Vec<String> {
    pe.sections.iter().map(|s| s.name_lossy()).collect()
}

#[test]
fn appends_sections_like_ukify_257() {
    let stub = stub257().build();
    let s = payload(kernel(0x100));
    let uki = build(&stub, &s).unwrap();
    let (old, pe) = (Pe::parse(&stub).unwrap(), Pe::parse(&uki).unwrap());
    assert_eq!(
        names(&pe)[6..],
        [".osrel", ".cmdline", ".uname", ".linux", ".initrd"]
    );
    assert_eq!(
        pe.sections[..6]
            .iter()
            .map(|s| s.virtual_address)
            .collect::<Vec<_>>(),
        old.sections
            .iter()
            .map(|s| s.virtual_address)
            .collect::<Vec<_>>()
    );
    let reloc = old.sections.last().unwrap();
    let mut va = (reloc.virtual_address + reloc.virtual_size).div_ceil(0x1000) * 0x1000;
    let mut ptr = old.data().len() as u32;
    for (sec, data) in pe.sections[6..]
        .iter()
        .zip([&s.osrel, &s.cmdline, &s.uname, &s.linux, &s.initrd])
    {
        let raw = (data.len() as u32).div_ceil(0x200) * 0x200;
        assert_eq!(
            sec.virtual_size as usize,
            data.len(),
            "{}",
            sec.name_lossy()
        );
        assert_eq!(
            (
                sec.virtual_address,
                sec.pointer_to_raw_data,
                sec.size_of_raw_data
            ),
            (va, ptr, raw)
        );
        let code = if sec.name() == b".linux" {
            0x4000_0020
        } else {
            0x4000_0040
        };
        assert_eq!(sec.characteristics, code);
        assert_eq!(pe.contents(sec).unwrap(), &data[..]);
        va = (va + data.len() as u32).div_ceil(0x1000) * 0x1000;
        ptr += raw;
    }
    assert_eq!(uki.len() as u32, ptr);
    assert_eq!(pe.optional.size_of_image, va);
    assert_eq!(pe.optional.check_sum, 0);
    assert_eq!(pe.optional.dll_characteristics, 0x160);
    let added: usize = [&s.osrel, &s.cmdline, &s.uname, &s.linux, &s.initrd]
        .iter()
        .map(|d| d.len())
        .sum();
    assert_eq!(
        pe.optional.size_of_initialized_data,
        old.optional.size_of_initialized_data + added as u32
    );
    assert_eq!(pe.optional.size_of_code, old.optional.size_of_code);
    assert_eq!(pe.coff.time_date_stamp, old.coff.time_date_stamp);
    assert_eq!(build(&stub, &s).unwrap(), uki, "deterministic");
}

#[test]
fn sbat_is_merged_in_place() {
    let stub = stub257().build();
    let uki = build(&stub, &payload(kernel(0x100))).unwrap();
    let (old, pe) = (Pe::parse(&stub).unwrap(), Pe::parse(&uki).unwrap());
    let (before, after) = (old.section(".sbat").unwrap(), pe.section(".sbat").unwrap());
    let want = format!(
        "{}\n{}\n\0",
        String::from_utf8_lossy(&STUB_SBAT[..STUB_SBAT.len() - 1]),
        sbat::DEFAULT_UKI_SBAT
    );
    assert_eq!(pe.contents(after).unwrap(), want.as_bytes());
    assert_eq!(after.virtual_size as usize, want.len());
    assert_eq!(
        (after.size_of_raw_data, after.pointer_to_raw_data),
        (before.size_of_raw_data, before.pointer_to_raw_data)
    );
    assert!(pe.raw_data(after).unwrap()[want.len()..]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn strips_symbol_table_and_keeps_0x200_alignment() {
    let stub = stub252().build();
    let old = Pe::parse(&stub).unwrap();
    let table_at = old.coff.pointer_to_symbol_table as usize;
    assert_ne!(table_at, 0);
    let uki = build(&stub, &payload(kernel(0))).unwrap();
    let pe = Pe::parse(&uki).unwrap();
    assert_eq!(
        (pe.coff.pointer_to_symbol_table, pe.coff.number_of_symbols),
        (0, 0)
    );
    assert_eq!(pe.coff.characteristics, old.coff.characteristics);
    let osrel = pe.section(".osrel").unwrap();
    assert_eq!(
        osrel.pointer_to_raw_data as usize, table_at,
        "first new section replaces the symbols"
    );
    assert_eq!(osrel.virtual_address % 0x200, 0);
    assert_eq!(pe.optional.dll_characteristics, 0);
}

#[test]
fn nx_compat_follows_the_kernel() {
    let stub = stub257().build();
    let not_pe = b"MZ not a PE".to_vec();
    for (kernel, want) in [
        (kernel(0x100), 0x160),
        (kernel(0x40), 0x60),
        (not_pe, 0x160),
    ] {
        let uki = build(&stub, &payload(kernel)).unwrap();
        let dll = Pe::parse(&uki).unwrap().optional.dll_characteristics;
        assert_eq!(dll, want);
        assert_eq!(
            dll & DLL_CHARACTERISTICS_NX_COMPAT,
            want & DLL_CHARACTERISTICS_NX_COMPAT
        );
    }
}

#[test]
fn empty_sections_are_left_out() {
    let s = Sections {
        cmdline: Vec::new(),
        initrd: Vec::new(),
        ..payload(kernel(0x100))
    };
    let uki = build(&stub257().build(), &s).unwrap();
    assert_eq!(
        names(&Pe::parse(&uki).unwrap())[6..],
        [".osrel", ".uname", ".linux"]
    );
}

#[test]
fn unaligned_stub_sections_are_padded_like_ukify() {
    // Shrink .rodata's SizeOfRawData from 0x200 to 0x1f0: ukify pads it back to 0x200 and shifts
    // the rest by 0x10, then re-aligns each shifted section, so the net shift is 0x200.
    let mut stub = stub257().build();
    let hdr = Pe::parse(&stub).unwrap().sections[1].header_offset;
    stub[hdr + 16..hdr + 20].copy_from_slice(&0x1f0u32.to_le_bytes());
    let old = Pe::parse(&stub).unwrap();
    let uki = build(&stub, &payload(kernel(0x100))).unwrap();
    let pe = Pe::parse(&uki).unwrap();
    assert_eq!(pe.sections[1].size_of_raw_data, 0x200);
    for i in 2..6 {
        assert_eq!(
            pe.sections[i].pointer_to_raw_data,
            old.sections[i].pointer_to_raw_data + 0x200
        );
    }
    assert_eq!(pe.section_data(".sdmagic").unwrap(), Some(SDMAGIC));
}

#[test]
fn refusals_are_clear() {
    // Section table ends at 0x1a8 + 24 + 240 + 6 * 40 = 0x3a0: two free slots below 0x400.
    let full = SynthPe {
        e_lfanew: 0x1a8,
        size_of_headers: 0x400,
        ..stub257()
    }
    .build();
    let mut signed = stub257();
    signed.certificate_table = Some((0x8000, 0x100));
    let mut big = payload(kernel(0x100));
    big.sbat_extra = Some("x".repeat(600));
    let cases: Vec<(&str, Vec<u8>, Sections, &str)> = vec![
        (
            "header room",
            full,
            payload(kernel(0x100)),
            "stub header has room for 2 more sections, need 6",
        ),
        (
            "signed stub",
            signed.build(),
            payload(kernel(0x100)),
            "the stub is signed",
        ),
        (
            "sbat too big",
            stub257().build(),
            big,
            "does not fit the stub's section (512 bytes)",
        ),
        (
            "no kernel",
            stub257().build(),
            payload(Vec::new()),
            "kernel image (.linux) is empty",
        ),
        (
            "not a PE",
            b"hello".to_vec(),
            payload(kernel(0x100)),
            "parsing the systemd-stub",
        ),
    ];
    for (name, stub, s, want) in cases {
        let err = match build(&stub, &s) {
            Ok(_) => panic!("{name}: unexpectedly built"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(want), "{name}: {err}");
    }
}

#[test]
fn read_lists_sections_and_text() {
    let uki = build(&stub257().build(), &payload(kernel(0x100))).unwrap();
    let info = read(&uki).unwrap();
    assert_eq!(info.sections.len(), 11);
    assert_eq!(info.sections[9].name, ".linux");
    assert_eq!(info.cmdline.as_deref(), Some("console=ttyS0 roothash=00ff"));
    assert_eq!(info.uname.as_deref(), Some("6.1.0-test"));
    assert_eq!(info.osrel.as_deref(), Some("ID=test\nNAME=Test\n"));
    assert_eq!(info.stub_version.as_deref(), Some("257.13-1~deb13u1"));
    assert_eq!(info.stub_major, Some(257));
    assert!(info
        .sbat
        .unwrap()
        .ends_with(&format!("{}\n", sbat::DEFAULT_UKI_SBAT)));
}
