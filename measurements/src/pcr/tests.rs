use super::*;
use crate::authenticode;
use crate::pe::synth::SynthPe;

fn hex(d: Digest) -> String {
    d.to_hex()
}

#[test]
fn fixed_event_digests_match_real_logs() {
    // Values from the OVMF log in fixtures/eventlog (both banks) and uki-pcr-verity.md §3.
    let cases: &[(&[u8], Bank, &str)] = &[
        (&[0; 4], Bank::Sha256, "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119"),
        (&[0; 4], Bank::Sha384, "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"),
        (b"Calling EFI Application from Boot Option", Bank::Sha256, "3d6772b4f84ed47595d72a2c4c5ffd15f5bb72c7507fe26f2aaee2c69d5633ba"),
        (b"Calling EFI Application from Boot Option", Bank::Sha384, "77a0dab2312b4e1e57a84d865a21e5b2ee8d677a21012ada819d0a98988078d3d740f6346bfe0abaa938ca20439a8d71"),
        (b"Returning from EFI Application from Boot Option", Bank::Sha256, "7044f06303e54fa96c3fcd1a0f11047c03d209074470b1fd60460c9f007e28a6"),
        (b".linux\0", Bank::Sha256, "0da293e37ad5511c59be47993769aacb91b243f7d010288e118dc90e95aaef5a"),
        (b".cmdline\0", Bank::Sha256, "461203a89f23e36c3a4dc817f905b00484d2cf7e7d9376f13df91c41d84abe46"),
    ];
    for (data, bank, want) in cases {
        assert_eq!(
            hex(bank.hash(data)),
            *want,
            "{:?} {bank}",
            String::from_utf8_lossy(data)
        );
    }
    // A firmware PCR whose only event was a separator (constellation-notes §5.1).
    assert_eq!(
        hex(Bank::Sha256.zero().extend(&Bank::Sha256.hash(&[0; 4]))),
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"
    );
}

#[test]
fn banks_and_event_type_names_round_trip() {
    for b in Bank::ALL {
        assert_eq!(Bank::from_name(b.name()), Some(b));
        assert_eq!(Bank::from_alg_id(b.alg_id()), Some(b));
        assert_eq!(b.zero().as_bytes().len(), b.digest_len());
        let d = b.hash(b"x");
        assert_eq!(Digest::from_hex(b, &d.to_hex()), Some(d));
    }
    assert_eq!(Digest::from_hex(Bank::Sha384, &"00".repeat(32)), None);
    for t in [
        EventType::IPL,
        EventType::EVENT_TAG,
        EventType(0x8000_00e0),
        EventType(0x1234),
    ] {
        assert_eq!(EventType::from_name(&t.name()), Some(t), "{t}");
    }
    assert_eq!(EventType(0x1234).name(), "0x00001234");
}

/// `systemd-measure calculate --linux=… --osrel=… --cmdline=… --initrd=…` (systemd 252.39,
/// Debian bookworm) with linux=`LINUX`, osrel=`ID=test\n`, cmdline=`quiet ro\0`,
/// initrd=`INITRD`; the 257 row is systemd-measure 257 with uname and sbat added
/// (uki-pcr-verity.md §5.3).
#[test]
fn pcr11_per_stub_version_matches_systemd_measure() {
    let base: Vec<(&str, &[u8])> = vec![
        (".linux", b"LINUX"),
        (".osrel", b"ID=test\n"),
        (".cmdline", b"quiet ro\0"),
        (".initrd", b"INITRD"),
    ];
    let mut with_uname = base.clone();
    with_uname.push((".uname", b"6.1.0-test"));
    with_uname.push((
        ".sbat",
        b"sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n",
    ));
    let ef04 = "ef04595241fd2f8430d2333d68a3b98d9d3a1190c877413c87e11e9848853b38";
    let fe6e = "fe6ecd0640384b13ccad29fa65608e059041dd520c3d571960c3cc0154517ea7";
    type Sections<'a> = &'a [(&'a str, &'a [u8])];
    let cases: &[(StubFamily, Sections, Bank, &str)] = &[
        (StubFamily::V252, &base, Bank::Sha256, ef04),
        (StubFamily::V252, &base, Bank::Sha384, "8d17499db42b0b373d6c3fb32b0316e85f1db0964249be8171811372438c3833168c596ee5e6dffe7e4169c4e9524d3d"),
        // 252 measures neither .uname nor .sbat.
        (StubFamily::V252, &with_uname, Bank::Sha256, ef04),
        (StubFamily::V254, &with_uname, Bank::Sha256, fe6e),
        (StubFamily::V256, &with_uname, Bank::Sha256, fe6e),
        (StubFamily::V257, &with_uname, Bank::Sha256, fe6e),
        (StubFamily::V254, &base, Bank::Sha256, ef04),
    ];
    for (family, sections, bank, want) in cases {
        assert_eq!(
            hex(pcr11_from_contents(*family, sections, *bank)),
            *want,
            "{family:?} {bank}"
        );
    }
    // .ucode sits between .initrd and .splash from 256 on; 254 does not measure it.
    let mut ucode = base.clone();
    ucode.push((".ucode", b"UCODE"));
    assert_eq!(
        hex(pcr11_from_contents(StubFamily::V254, &ucode, Bank::Sha256)),
        ef04
    );
    assert_ne!(
        hex(pcr11_from_contents(StubFamily::V256, &ucode, Bank::Sha256)),
        ef04
    );
}

/// `systemd-measure calculate … --json=short` (252.39), default phases, same inputs.
#[test]
fn phases_match_systemd_measure() {
    let p11 = Digest::from_hex(
        Bank::Sha256,
        "ef04595241fd2f8430d2333d68a3b98d9d3a1190c877413c87e11e9848853b38",
    )
    .unwrap();
    let got: Vec<(String, String)> = phase_values(p11, &DEFAULT_PHASE_PATHS)
        .into_iter()
        .map(|(p, d)| (p, d.to_hex()))
        .collect();
    let want = [
        (
            "enter-initrd",
            "702a9bb52a42279b1a868d753a3152c166ac69617697cc09efcdc0cc224afab4",
        ),
        (
            "enter-initrd:leave-initrd",
            "8a87b21a0a2371d4574e13c3773f613f9dc9f249c0c0b83374f658434d0b5924",
        ),
        (
            "enter-initrd:leave-initrd:sysinit",
            "3c5c11bb3000c8dc9f0ab0a8aa8444993e31cbac0eff9d066b771bace6e66b51",
        ),
        (
            "enter-initrd:leave-initrd:sysinit:ready",
            "8441b08c52caf1d5c2ef1f52cb15b9aaf2ff199b2dcb3b5d9b503b687ddfe219",
        ),
    ];
    for ((path, value), (wp, wv)) in got.iter().zip(want) {
        assert_eq!((path.as_str(), value.as_str()), (wp, wv));
    }
    let p384 = Digest::from_hex(Bank::Sha384, "8d17499db42b0b373d6c3fb32b0316e85f1db0964249be8171811372438c3833168c596ee5e6dffe7e4169c4e9524d3d").unwrap();
    assert_eq!(
        hex(phase_values(p384, &["enter-initrd:leave-initrd:sysinit:ready"])[0].1),
        "4e1d5a073dcb3a5ac1ce5ddbbedf5402c2f9f4c51a8af78577756ed0d218d2ba9268177172a06fbba88bcd19b4179ef5"
    );
    assert_eq!(phase_values(p11, &[":", ""])[0].1, p11);
}

#[test]
fn cmdline_mangling_per_stub_version() {
    use StubFamily::*;
    // (section bytes, 252/254 result, 256/257 result) from the stubs' mangle_stub_cmdline.
    let cases: &[(&[u8], &str, &str)] = &[
        (
            b"console=ttyS0 panic=-1",
            "console=ttyS0 panic=-1",
            "console=ttyS0 panic=-1",
        ),
        (b"a b\0ignored", "a b", "a b"),
        (b"a\tb\nc  \n", "a b c", "a b c"),
        (b"  lead", "  lead", "lead"),
        (b"x\x7fy\x7f", "x\x7fy\x7f", "x y"),
        (b"x \x01 y", "x   y", "x   y"),
        ("ünï \u{1F600}!".as_bytes(), "ünï !", "ünï !"),
        // Invalid UTF-8 is skipped whole; an overlong NUL ends the string.
        (b"a\xc3(b", "ab", "ab"),
        (b"a\xc0\x80b", "a", "a"),
        (b"   ", "", ""),
    ];
    for (raw, old, new) in cases {
        assert_eq!(
            mangle_cmdline(V252, raw).as_deref(),
            Some(*old),
            "252 {raw:?}"
        );
        assert_eq!(
            mangle_cmdline(V254, raw).as_deref(),
            Some(*old),
            "254 {raw:?}"
        );
        assert_eq!(
            mangle_cmdline(V257, raw).as_deref(),
            Some(*new),
            "257 {raw:?}"
        );
    }
    assert_eq!(V257.cmdline_from_section(None), None);
    assert_eq!(V252.cmdline_from_section(Some(b"")), None);
}

/// PCR 9 LoadOptions digests: uki-pcr-verity.md §9's vector, and the fixture's command line as
/// the kernel measured it in the real boot of fixtures/eventlog (event 37).
#[test]
fn load_options_digests_match_real_boots() {
    let lo = |s: &[u8]| {
        let u = StubFamily::V257.cmdline_from_section(Some(s)).unwrap();
        hex(Bank::Sha256.hash(&stub::load_options_bytes(&u)))
    };
    assert_eq!(
        lo(b"console=ttyS0 panic=-1"),
        "cd773142715a513b8406e91e9b1c18c1917791d3801c3cb15b19ca73b0c2d66d"
    );
    assert_eq!(
        lo(b"roothash=2ef52506314ccb9620d80f124fab3a15d9efe76fe76b467e5ffc8c45ccd0a086 console=ttyS0 panic=-1"),
        "99be996e63748850b2158d60f381ff4ce47d366723d8550e497e911869ce8478"
    );
}

mod uki;
