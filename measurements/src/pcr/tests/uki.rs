//! Predictions for small synthetic UKIs, checked against independent recomputation from the
//! parts (each part's rule has its own known-answer test above or in `authenticode`).

use super::*;

fn kernel(major: u16, markers: bool) -> Vec<u8> {
    let mut text = vec![0x90u8; 0x300];
    if markers {
        text.extend_from_slice(b"\0LOADED_IMAGE::LoadOptions\0Linux initrd\0");
    }
    SynthPe {
        major_image_version: major,
        dll_characteristics: 0x100,
        ..SynthPe::default()
    }
    .section(".text", &text, 0x6000_0020)
    .build()
}

struct Uki {
    version: &'static str,
    extra: Vec<(&'static str, Vec<u8>)>,
    kernel: Vec<u8>,
}

const CMDLINE: &[u8] = b"roothash=00 console=ttyS0 \n";
const OSREL: &[u8] = b"ID=fixture\n";

fn initrd() -> Vec<u8> {
    (0..70_001u32).map(|i| (i * 31 % 251) as u8).collect()
}

impl Uki {
    fn new(version: &'static str) -> Self {
        Uki {
            version,
            extra: Vec::new(),
            kernel: kernel(1, true),
        }
    }

    fn build(&self) -> Vec<u8> {
        let magic = format!("#### LoaderInfo: systemd-stub {} ####\0", self.version);
        let mut pe = SynthPe::default()
            .section(".text", &[0xcc; 0x280], 0x6000_0020)
            .section(".sdmagic", magic.as_bytes(), 0x4000_0040)
            .section(".osrel", OSREL, 0x4000_0040)
            .section(".cmdline", CMDLINE, 0x4000_0040)
            .section(".uname", b"6.1.0-test", 0x4000_0040)
            .section(".linux", &self.kernel, 0x4000_0020)
            .section(".initrd", &initrd(), 0x4000_0040)
            .section(".sbat", b"sbat,1,x\n", 0x4000_0040);
        for (name, data) in &self.extra {
            pe = pe.section(name, data, 0x4000_0040);
        }
        pe.build()
    }
}

fn pad4(mut v: Vec<u8>) -> Vec<u8> {
    v.resize(v.len().div_ceil(4) * 4, 0);
    v
}

/// The events of every PCR but 7 (tested on its own below).
fn types(p: &Prediction) -> Vec<(u32, String)> {
    p.events
        .iter()
        .filter(|e| e.pcr != 7)
        .map(|e| (e.pcr, e.description.clone()))
        .collect()
}

fn descriptions(p: &Prediction, pcr: u32) -> Vec<String> {
    p.events
        .iter()
        .filter(|e| e.pcr == pcr)
        .map(|e| e.description.clone())
        .collect()
}

/// A UKI signed by a fresh db key, and the enrolled lists with that key in db.
fn signed_uki(uki: &[u8], db_extra: bool) -> (Vec<u8>, SecureBoot) {
    use crate::secureboot::{authenticode, cert, esl, Guid};
    use crate::signer::RsaKey;
    let now = std::time::SystemTime::now();
    let k = RsaKey::generate(&mut rand_core::OsRng, 2048, "db").unwrap();
    let c = cert::self_signed(&k, "test db", &[5; 8], now, 1, true).unwrap();
    let owner = Guid([9; 16]);
    let mut db = Vec::new();
    if db_extra {
        let other = RsaKey::generate(&mut rand_core::OsRng, 2048, "other").unwrap();
        let oc = cert::self_signed(&other, "other", &[6; 8], now, 1, true).unwrap();
        db.extend(esl::x509(Guid([1; 16]), &cert::to_der(&oc).unwrap()));
    }
    db.extend(esl::x509(owner, &cert::to_der(&c).unwrap()));
    let keys = crate::secureboot::pcr7::EnrolledKeys {
        pk: esl::x509(owner, b"pk"),
        kek: esl::x509(owner, b"kek"),
        db,
        dbx: Vec::new(),
    };
    let signed = authenticode::sign(uki, &c, &k).unwrap();
    (
        signed,
        SecureBoot {
            enabled: true,
            keys,
        },
    )
}

#[test]
fn secure_boot_adds_pcr7_authority_and_drops_the_kernel_event() {
    let unsigned = Uki::new("257.13-1~deb13u1").build();
    let off = predict(&unsigned, &Options::default()).unwrap();
    assert_eq!(
        descriptions(&off, 7),
        [
            "SecureBoot = 0",
            "PK (absent)",
            "KEK (absent)",
            "db (absent)",
            "dbx (absent)",
            "separator"
        ]
    );
    assert!(off.authority.is_none());
    for extra in [false, true] {
        let (signed, sb) = signed_uki(&unsigned, extra);
        let opts = Options {
            secure_boot: sb.clone(),
            ..Options::default()
        };
        let on = predict(&signed, &opts).unwrap();
        let d7 = descriptions(&on, 7);
        assert_eq!(d7[0], "SecureBoot = 1");
        assert_eq!(d7.len(), 7, "{d7:?}");
        assert!(d7[6].starts_with("db entry (owner 09090909-"), "{d7:?}");
        // The authority is the matching db entry, never the unrelated first one.
        let entry = on.authority.clone().unwrap();
        assert_eq!(entry.owner, crate::secureboot::Guid([9; 16]));
        let want = crate::secureboot::pcr7::variable_data(
            crate::secureboot::EFI_IMAGE_SECURITY_DATABASE,
            "db",
            &entry.to_bytes(),
        );
        let ev = on
            .events
            .iter()
            .find(|e| e.pcr == 7 && e.event_type == EventType::EFI_VARIABLE_AUTHORITY)
            .unwrap();
        assert_eq!(ev.digests[&Bank::Sha256], Bank::Sha256.hash(&want));
        // PCR 4: the prelude and the UKI only; PCR 11 is unchanged by signing.
        let d4 = descriptions(&on, 4);
        assert_eq!(d4.len(), 3, "{d4:?}");
        assert!(d4[2].starts_with("UKI "), "{d4:?}");
        assert_eq!(on.pcrs[&Bank::Sha256][&11], off.pcrs[&Bank::Sha256][&11]);
        assert_ne!(on.pcrs[&Bank::Sha256][&4], off.pcrs[&Bank::Sha256][&4]);
        assert_ne!(on.pcrs[&Bank::Sha384][&7], off.pcrs[&Bank::Sha384][&7]);
        // An unsigned UKI, a UKI signed by another key, and a revoked one are refused.
        let e = predict(&unsigned, &opts).unwrap_err().to_string();
        assert!(e.contains("not signed"), "{e}");
        let (other, _) = signed_uki(&unsigned, false);
        let e = predict(&other, &opts).unwrap_err().to_string();
        assert!(e.contains("no db certificate authorises"), "{e}");
        let digest = crate::authenticode::digest_of(&signed, Bank::Sha256).unwrap();
        let mut revoked = opts.clone();
        let mut dbx = crate::secureboot::EFI_CERT_SHA256.0.to_vec();
        dbx.extend_from_slice(&76u32.to_le_bytes());
        dbx.extend_from_slice(&0u32.to_le_bytes());
        dbx.extend_from_slice(&48u32.to_le_bytes());
        dbx.extend_from_slice(&[3; 16]);
        dbx.extend_from_slice(digest.as_bytes());
        revoked.secure_boot.keys.dbx = dbx;
        let e = predict(&signed, &revoked).unwrap_err().to_string();
        assert!(e.contains("dbx revokes"), "{e}");
    }
}

#[test]
fn stub_257_events_and_values() {
    let uki = Uki::new("257.13-1~deb13u1").build();
    let p = predict(&uki, &Options::default()).unwrap();
    assert_eq!(p.stub.family, StubFamily::V257);
    assert_eq!(p.cmdline.as_deref(), Some("roothash=00 console=ttyS0"));
    let d: Vec<String> = types(&p)
        .into_iter()
        .map(|(pcr, d)| format!("{pcr} {d}"))
        .collect();
    assert_eq!(
        d[..5],
        [
            "4 Calling EFI Application from Boot Option",
            "4 separator",
            "4 UKI \\EFI\\BOOT\\BOOTX64.EFI (Authenticode)",
            "11 .linux section name",
            &format!(
                "11 .linux section contents ({} bytes)",
                Uki::new("x").kernel.len()
            ),
        ]
    );
    assert_eq!(d[13], "11 .sbat section name");
    assert_eq!(
        d[15],
        "4 kernel from .linux, started by systemd-stub with LoadImage (Authenticode)"
    );
    assert_eq!(
        d[16],
        "9 LOADED_IMAGE::LoadOptions: \"roothash=00 console=ttyS0\""
    );
    assert!(
        d[17].starts_with("9 Linux initrd: .initrd + .osrel cpio (/.extra/os-release) ("),
        "{}",
        d[17]
    );
    assert_eq!(d.len(), 18);

    for bank in Bank::ALL {
        // PCR 4: Calling, separator, UKI, kernel — recomputed from the parts.
        let pcr4 = [
            bank.hash(b"Calling EFI Application from Boot Option"),
            bank.hash(&[0; 4]),
            authenticode::digest_of(&uki, bank).unwrap(),
            authenticode::digest_of(&Uki::new("x").kernel, bank).unwrap(),
        ]
        .iter()
        .fold(bank.zero(), |p, d| p.extend(d));
        assert_eq!(p.pcrs[&bank][&4], pcr4, "{bank}");
        assert_eq!(
            p.uki_authenticode[&bank],
            authenticode::digest_of(&uki, bank).unwrap()
        );
        // PCR 11: systemd-measure semantics over the same contents.
        let (k, i) = (Uki::new("x").kernel, initrd());
        let refs: Vec<(&str, &[u8])> = vec![
            (".linux", &k),
            (".osrel", OSREL),
            (".cmdline", CMDLINE),
            (".initrd", &i),
            (".uname", b"6.1.0-test"),
            (".sbat", b"sbat,1,x\n"),
        ];
        assert_eq!(
            p.pcrs[&bank][&11],
            pcr11_from_contents(StubFamily::V257, &refs, bank)
        );
        // PCR 9: LoadOptions, then .initrd ‖ pad ‖ the stub's os-release cpio.
        let mut handed = pad4(initrd());
        handed.extend(pad4(cpio_literal(OSREL, ".extra", "os-release")));
        let lo: Vec<u8> = "roothash=00 console=ttyS0\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let pcr9 = bank
            .zero()
            .extend(&bank.hash(&lo))
            .extend(&bank.hash(&handed));
        assert_eq!(p.pcrs[&bank][&9], pcr9, "{bank}");
        assert_eq!(p.pcrs[&bank][&12], bank.zero());
        assert_eq!(p.pcrs[&bank][&13], bank.zero());
        assert_eq!(p.pcr11_phases[&bank].len(), 4);
        assert_eq!(
            p.pcr11_phases[&bank][0].1,
            p.pcrs[&bank][&11].extend(&bank.hash(b"enter-initrd"))
        );
    }
}

#[test]
fn stub_252_and_254_hand_over_the_initrd_as_is() {
    for (version, family, pcr11_events) in [
        ("252.39-1~deb12u2", StubFamily::V252, 8),
        ("254.26-1~bpo12+1", StubFamily::V254, 12),
    ] {
        let uki = Uki::new(version).build();
        let p = predict(&uki, &Options::default()).unwrap();
        assert_eq!(p.stub.family, family);
        assert_eq!(
            p.events.iter().filter(|e| e.pcr == 11).count(),
            pcr11_events,
            "{version}"
        );
        let initrd_event = p.events.iter().rfind(|e| e.pcr == 9).unwrap();
        assert_eq!(
            initrd_event.digests[&Bank::Sha256],
            Bank::Sha256.hash(&initrd()),
            "{version}"
        );
        assert!(initrd_event
            .description
            .starts_with("Linux initrd: .initrd ("));
        // The 252 cleanup keeps inner control characters as spaces and drops trailing ones.
        assert_eq!(p.cmdline.as_deref(), Some("roothash=00 console=ttyS0"));
    }
}

#[test]
fn stub_252_appends_the_pcrpkey_cpio() {
    let mut u = Uki::new("252.39-1~deb12u2");
    u.extra
        .push((".pcrpkey", b"-----BEGIN PUBLIC KEY-----\n".to_vec()));
    let p = predict(&u.build(), &Options::default()).unwrap();
    let mut handed = pad4(initrd());
    handed.extend(cpio_literal(
        b"-----BEGIN PUBLIC KEY-----\n",
        ".extra",
        "tpm2-pcr-public-key.pem",
    ));
    let e = p.events.iter().rfind(|e| e.pcr == 9).unwrap();
    assert_eq!(e.digests[&Bank::Sha384], Bank::Sha384.hash(&handed));
    assert!(p
        .events
        .iter()
        .any(|e| e.description == ".pcrpkey section name"));
}

#[test]
fn firmware_profile_with_a_failed_boot_attempt() {
    let uki = Uki::new("257.13").build();
    let opts = Options {
        firmware: FirmwareProfile::OvmfBootRetry,
        banks: vec![Bank::Sha256],
        ..Options::default()
    };
    let p = predict(&uki, &opts).unwrap();
    let pcr4: Vec<String> = p
        .events
        .iter()
        .filter(|e| e.pcr == 4)
        .map(|e| e.description.clone())
        .collect();
    assert_eq!(
        pcr4[..4],
        [
            "Calling EFI Application from Boot Option",
            "separator",
            "Returning from EFI Application from Boot Option",
            "Calling EFI Application from Boot Option",
        ]
    );
    assert_eq!(p.pcrs.keys().copied().collect::<Vec<_>>(), [Bank::Sha256]);
    assert_eq!(
        FirmwareProfile::from_name("ovmf-boot-retry"),
        Some(FirmwareProfile::OvmfBootRetry)
    );
}

#[test]
fn kernel_without_pcr9_support_measures_nothing_into_pcr9() {
    let mut u = Uki::new("257.13");
    u.kernel = kernel(1, false);
    let p = predict(&u.build(), &Options::default()).unwrap();
    assert!(p.events.iter().all(|e| e.pcr != 9));
    assert_eq!(p.pcrs[&Bank::Sha256][&9], Bank::Sha256.zero());
}

#[test]
fn refusals_name_the_reason() {
    let with = |version: &'static str, f: &dyn Fn(&mut Uki)| {
        let mut u = Uki::new(version);
        f(&mut u);
        predict(&u.build(), &Options::default())
            .unwrap_err()
            .to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with("260.1-1", &|_| {}),
            "systemd-stub 260.1-1 is not a version nodeimg can predict",
        ),
        (
            with("253.5", &|_| {}),
            "systemd-stub 253.5 is not a version",
        ),
        (
            with("256.7-2", &|_| {}),
            "systemd-stub 256.7-2: its PCR 9 initrd and command-line handling was never verified",
        ),
        (
            with("257.13", &|u| {
                u.extra.push((".profile", b"ID=a\n".to_vec()))
            }),
            "has a .profile section",
        ),
        (
            with("257.13", &|u| u.kernel = kernel(0, true)),
            "MajorImageVersion 0",
        ),
        (
            with("257.13", &|u| u.kernel = b"not a PE".to_vec()),
            "parsing the kernel in .linux",
        ),
    ];
    for (err, want) in cases {
        assert!(err.contains(want), "{err:?} lacks {want:?}");
    }
    // .initrd (table entry 6 of the UKI) claiming 16 MiB of memory for 70 KB of data.
    let mut big = Uki::new("257.13").build();
    let vs = 0x148 + 6 * 40 + 8;
    big[vs..vs + 4].copy_from_slice(&(16u32 << 20).to_le_bytes());
    let err = predict(&big, &Options::default()).unwrap_err().to_string();
    assert!(
        err.starts_with("section .initrd: VirtualSize 0x1000000 exceeds SizeOfRawData"),
        "{err}"
    );
    let no_magic = SynthPe::default()
        .section(".linux", &kernel(1, true), 0x4000_0020)
        .build();
    assert_eq!(
        predict(&no_magic, &Options::default()).unwrap_err(),
        PredictError::NoStubVersion
    );
}

/// Errors are fine, panics are bugs: every header byte of a UKI set to 0x00, 0xff and 0x7f.
#[test]
fn mutated_headers_never_panic() {
    let uki = Uki::new("257.13").build();
    let opts = Options {
        banks: vec![Bank::Sha256],
        ..Options::default()
    };
    let mut ok = 0;
    for at in 0..0x600 {
        for v in [0x00, 0xff, 0x7f] {
            let mut m = uki.clone();
            m[at] = v;
            ok += usize::from(predict(&m, &opts).is_ok());
            let _ = crate::authenticode::digest_of(&m, Bank::Sha256);
        }
    }
    // Bytes outside the parsed fields (DOS stub, padding) change nothing that matters.
    assert!(ok > 0x600, "{ok}");
    for len in (0..uki.len()).step_by(997) {
        assert!(predict(&uki[..len], &opts).is_err(), "prefix {len}");
    }
}

#[test]
fn a_pcr_subset_gives_the_same_values_for_those_pcrs_only() {
    for version in ["252.39-1~deb12u2", "257.13-1~deb13u1"] {
        let uki = Uki::new(version).build();
        let full = predict(&uki, &Options::default()).unwrap();
        for subset in [vec![11], vec![4], vec![9, 12]] {
            let opts = Options {
                pcrs: subset.clone(),
                ..Options::default()
            };
            let p = predict(&uki, &opts).unwrap();
            for bank in Bank::ALL {
                let want: BTreeMap<u32, Digest> = full.pcrs[&bank]
                    .iter()
                    .filter(|(k, _)| subset.contains(k))
                    .map(|(k, v)| (*k, *v))
                    .collect();
                assert_eq!(p.pcrs[&bank], want, "{version} {subset:?} {bank}");
            }
            assert!(p.events.iter().all(|e| subset.contains(&e.pcr)));
            assert_eq!(
                p.events.len(),
                full.events
                    .iter()
                    .filter(|e| subset.contains(&e.pcr))
                    .count()
            );
            assert_eq!(p.pcr11_phases.is_empty(), !subset.contains(&11));
            if subset.contains(&11) {
                assert_eq!(p.pcr11_phases, full.pcr11_phases);
            }
            assert_eq!(p.uki_authenticode.is_empty(), !subset.contains(&4));
        }
    }
}
