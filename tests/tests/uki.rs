//! UKI writer cross-checks against ukify 257 and the Debian 252/254/257 stubs.
//!
//! Inputs come from `scripts/fetch-stubs.sh` (under `<repo>/.cache`); ukify needs a python3
//! with `pefile` (Debian: python3-pefile). Missing inputs skip loudly, or fail under
//! `NODEIMG_REQUIRE_TOOLS=1`.

use nodeimg_tests::noise;
use std::path::{Path, PathBuf};
use std::process::Command;

use builder::uki::{self, Sections};
use measurements::pe::Pe;

/// The kernel fetch-stubs.sh links to whatever Debian's current cloud kernel is.
const KERNEL: &str = "kernel/vmlinuz";

/// That kernel's release (`.cache/kernel/release`).
fn kernel_release() -> String {
    std::fs::read_to_string(cache().join("kernel/release"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
const STUBS: [u32; 3] = [252, 254, 257];

fn cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache")
}

/// Skips (returns `None`) with a loud message, or fails under NODEIMG_REQUIRE_TOOLS=1.
fn missing(what: &str) -> Option<std::convert::Infallible> {
    if std::env::var("NODEIMG_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{what} is missing (NODEIMG_REQUIRE_TOOLS=1); run scripts/fetch-stubs.sh");
    }
    eprintln!("SKIP: {what} is missing; run scripts/fetch-stubs.sh");
    None
}

fn input(rel: &str) -> Option<PathBuf> {
    let p = cache().join(rel);
    if p.is_file() {
        Some(p)
    } else {
        missing(&p.display().to_string())?;
        None
    }
}

fn stub_path(version: u32) -> Option<PathBuf> {
    input(&format!("stubs/{version}/linuxx64.efi.stub"))
}

/// A python3 that can import pefile (Debian's, not a pyenv shim without it).
fn python() -> Option<PathBuf> {
    let found = ["/usr/bin/python3", "python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .args(["-c", "import pefile"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        missing("python3 with the pefile module (python3-pefile)")?;
    }
    found
}

fn payload(kernel: &Path) -> Sections {
    Sections {
        osrel: b"ID=nodeimg\nNAME=\"nodeimg test\"\nVERSION_ID=1\n".to_vec(),
        cmdline: b"console=ttyS0 roothash=5fb1aa9e0a7c2c1b8d0d0fd1b1a1c1d1e1f101112131415161718191a1b1c1d".to_vec(),
        uname: kernel_release().into_bytes(),
        linux: std::fs::read(kernel).unwrap(),
        // Not a multiple of 4: a single initrd is stored unpadded.
        initrd: noise(300_001, 7),
        sbat_extra: None,
    }
}

/// Runs ukify 257 on the same inputs and returns its output.
fn ukify(py: &Path, stub: &Path, s: &Sections, dir: &Path) -> Vec<u8> {
    let ukify = cache().join("ukify/usr/bin/ukify");
    std::fs::write(dir.join("osrel"), &s.osrel).unwrap();
    std::fs::write(dir.join("linux"), &s.linux).unwrap();
    let out = dir.join("ukify.efi");
    let mut cmd = Command::new(py);
    cmd.arg(&ukify).arg("build").arg("--stub").arg(stub);
    cmd.arg("--linux").arg(dir.join("linux"));
    if !s.initrd.is_empty() {
        std::fs::write(dir.join("initrd"), &s.initrd).unwrap();
        cmd.arg("--initrd").arg(dir.join("initrd"));
    }
    cmd.arg("--cmdline")
        .arg(std::str::from_utf8(&s.cmdline).unwrap());
    cmd.arg(format!("--os-release=@{}", dir.join("osrel").display()));
    cmd.arg("--uname")
        .arg(std::str::from_utf8(&s.uname).unwrap());
    if let Some(sbat) = &s.sbat_extra {
        cmd.arg("--sbat").arg(sbat);
    }
    cmd.arg("--output").arg(&out);
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "ukify failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(out).unwrap()
}

/// One line per section, for readable mismatch reports.
fn dump(image: &[u8]) -> String {
    let pe = Pe::parse(image).unwrap();
    let mut out = format!(
        "len {:#x} headers {:#x}\n",
        image.len(),
        pe.optional.size_of_headers
    );
    for s in &pe.sections {
        out += &format!(
            "{:8} vs {:#9x} va {:#9x} raw {:#9x} ptr {:#9x} ch {:#010x}\n",
            s.name_lossy(),
            s.virtual_size,
            s.virtual_address,
            s.size_of_raw_data,
            s.pointer_to_raw_data,
            s.characteristics
        );
    }
    out
}

fn assert_same(ours: &[u8], theirs: &[u8], label: &str) {
    if ours != theirs {
        let at = ours
            .iter()
            .zip(theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(theirs.len()));
        panic!(
            "{label}: differs from ukify at offset {at:#x}\nours:\n{}ukify:\n{}",
            dump(ours),
            dump(theirs)
        );
    }
}

#[test]
fn byte_identical_to_ukify_257_for_all_stubs() {
    let (Some(py), Some(kernel)) = (python(), input(KERNEL)) else {
        return;
    };
    let Some(_) = input("ukify/usr/bin/ukify") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = payload(&kernel);
    for v in STUBS {
        let Some(stub) = stub_path(v) else { return };
        let theirs = ukify(&py, &stub, &s, dir.path());
        let ours = uki::build(&std::fs::read(&stub).unwrap(), &s).unwrap();
        assert_same(&ours, &theirs, &format!("stub {v}"));
        eprintln!("stub {v}: {} bytes, identical to ukify 257", ours.len());
    }
}

#[test]
fn byte_identical_to_ukify_257_with_user_sbat_and_no_initrd() {
    let (Some(py), Some(kernel), Some(stub)) = (python(), input(KERNEL), stub_path(257)) else {
        return;
    };
    let Some(_) = input("ukify/usr/bin/ukify") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut s = payload(&kernel);
    s.sbat_extra = Some(
        "sbat,1,SBAT Version,sbat,1,x\nnodeimg,1,nodeimg,nodeimg,1,https://example.invalid/\n"
            .into(),
    );
    s.initrd.clear();
    let theirs = ukify(&py, &stub, &s, dir.path());
    let ours = uki::build(&std::fs::read(&stub).unwrap(), &s).unwrap();
    assert_same(&ours, &theirs, "257 + user sbat, no initrd");
    assert!(uki::read(&ours)
        .unwrap()
        .sbat
        .unwrap()
        .contains("\nnodeimg,1,nodeimg"));
}

/// The stub facts of spec §2.4.
#[test]
fn debian_stubs_match_the_spec_table() {
    struct Facts {
        version: u32,
        e_lfanew: u32,
        section_alignment: u32,
        size_of_headers: u32,
        sections: &'static [&'static str],
        symbols: bool,
        dll: u16,
    }
    let table = [
        Facts {
            version: 252,
            e_lfanew: 0x80,
            section_alignment: 0x200,
            size_of_headers: 0x400,
            sections: &[
                ".text", ".reloc", ".data", ".dynamic", ".rela", ".dynsym", ".sbat", ".sdmagic",
            ],
            symbols: true,
            dll: 0,
        },
        Facts {
            version: 254,
            e_lfanew: 0x40,
            section_alignment: 0x1000,
            size_of_headers: 0x400,
            sections: &[".text", ".rodata", ".data", ".sdmagic", ".sbat", ".reloc"],
            symbols: false,
            dll: 0x160,
        },
        Facts {
            version: 257,
            e_lfanew: 0x40,
            section_alignment: 0x1000,
            size_of_headers: 0x600,
            sections: &[".text", ".rodata", ".data", ".sbat", ".sdmagic", ".reloc"],
            symbols: false,
            dll: 0x160,
        },
    ];
    for f in table {
        let v = f.version;
        let Some(path) = stub_path(v) else { return };
        let data = std::fs::read(path).unwrap();
        let pe = Pe::parse(&data).unwrap();
        let got: Vec<_> = pe.sections.iter().map(|s| s.name_lossy()).collect();
        assert_eq!(got, f.sections, "stub {v}");
        assert_eq!(pe.e_lfanew, f.e_lfanew, "stub {v}");
        let o = &pe.optional;
        assert_eq!(
            (o.section_alignment, o.file_alignment),
            (f.section_alignment, 0x200),
            "{v}"
        );
        assert_eq!(o.size_of_headers, f.size_of_headers, "stub {v}");
        assert_eq!(pe.coff.pointer_to_symbol_table != 0, f.symbols, "stub {v}");
        assert_eq!(o.dll_characteristics, f.dll, "stub {v}");
        assert_eq!(pe.stub_version().unwrap().unwrap().major, v);
        assert_eq!(
            pe.section(".sbat").unwrap().size_of_raw_data,
            0x200,
            "stub {v}"
        );
    }
}

/// SHA-256 of Debian's 257.13-1~deb13u1 `linuxx64.efi.stub` (trixie), the spec example's stub.
const STUB_257_SHA256: &str = "9c623743834bb904a3cb941092cffc958c31230263ce896d332a75e9ec48aa85";

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Spec §2.5 rows 0–5 (the 257 stub part of a UKI) and the appended rows' rules, with our kernel.
#[test]
fn layout_with_257_stub_matches_spec_example() {
    let (Some(kernel), Some(stub)) = (input(KERNEL), stub_path(257)) else {
        return;
    };
    let s = Sections {
        initrd: noise(300_000, 1),
        ..payload(&kernel)
    };
    let uki_bytes = uki::build(&std::fs::read(&stub).unwrap(), &s).unwrap();
    let pe = Pe::parse(&uki_bytes).unwrap();
    let rows: Vec<_> = pe
        .sections
        .iter()
        .map(|s| {
            (
                s.name_lossy(),
                s.virtual_size,
                s.virtual_address,
                s.size_of_raw_data,
                s.pointer_to_raw_data,
                s.characteristics,
            )
        })
        .collect();
    // The exact rows are those of the spec example, made with Debian's 257.13-1~deb13u1 stub;
    // when trixie ships another build, the rows must still be the stub's own, unchanged, and
    // the appended sections follow the same rules.
    let stub_bytes = std::fs::read(&stub).unwrap();
    let exact = sha256_hex(&stub_bytes) == STUB_257_SHA256;
    let stub_pe = Pe::parse(&stub_bytes).unwrap();
    let stub_rows: Vec<_> = if exact {
        vec![
            (".text", 0x1080e, 0x1000, 0x10a00, 0x600, 0x6000_0020),
            (".rodata", 0x4ef0, 0x12000, 0x5000, 0x11000, 0x4000_0040),
            (".data", 0xc0, 0x17000, 0x200, 0x16000, 0xc000_0040),
            (".sbat", 0x14c, 0x18000, 0x200, 0x16200, 0x4000_0040),
            (".sdmagic", 0x33, 0x19000, 0x200, 0x16400, 0x4000_0040),
            (".reloc", 0x88, 0x1a000, 0x200, 0x16600, 0x4200_0040),
        ]
    } else {
        eprintln!(
            "NOTE: the 257 stub is not the spec example's build (sha256 {}): checking the rules, not the exact rows",
            sha256_hex(&stub_bytes)
        );
        stub_pe
            .sections
            .iter()
            .map(|s| {
                (
                    leak(s.name_lossy()),
                    s.virtual_size,
                    s.virtual_address,
                    s.size_of_raw_data,
                    s.pointer_to_raw_data,
                    s.characteristics,
                )
            })
            .collect()
    };
    assert_eq!(stub_rows.len(), 6, "the 257 stub's sections");
    for (got, want) in rows.iter().zip(stub_rows.iter().copied()) {
        let got = (got.0.as_str(), got.1, got.2, got.3, got.4, got.5);
        if !exact && want.0 == ".sbat" {
            // The UKI's .sbat is the stub's plus the UKI entry (spec §2.8): only its virtual
            // size grows, within the stub's raw size.
            assert!(
                got.1 > want.1 && got.1 <= want.3,
                "{got:?} vs the stub's {want:?}"
            );
            assert_eq!(
                (got.0, got.2, got.3, got.4, got.5),
                (want.0, want.2, want.3, want.4, want.5)
            );
        } else {
            assert_eq!(got, want);
        }
    }
    let appended: Vec<_> = rows[6..].iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        appended,
        [".osrel", ".cmdline", ".uname", ".linux", ".initrd"]
    );
    let last = stub_rows[5];
    assert_eq!(
        (rows[6].2, rows[6].4),
        ((last.2 + last.1).next_multiple_of(0x1000), last.4 + last.3),
        ".osrel right after .reloc"
    );
    assert_eq!(rows[10].1, 300_000);
    assert_eq!(pe.optional.check_sum, 0);
    assert_eq!(pe.offsets.check_sum, 0x98);
    let info = uki::read(&uki_bytes).unwrap();
    if exact {
        assert_eq!(info.stub_version.as_deref(), Some("257.13-1~deb13u1"));
    } else {
        assert!(
            info.stub_version
                .as_deref()
                .is_some_and(|v| v.starts_with("257.")),
            "{:?}",
            info.stub_version
        );
    }
    assert_eq!(info.uname, Some(kernel_release()));
}

#[test]
fn stub_252_has_seven_free_header_slots() {
    let (Some(kernel), Some(stub)) = (input(KERNEL), stub_path(252)) else {
        return;
    };
    let stub = std::fs::read(stub).unwrap();
    // Five payload sections + the in-place .sbat check = 6 slots: fits.
    assert!(uki::build(&stub, &payload(&kernel)).is_ok());
    let pe = Pe::parse(&stub).unwrap();
    let table_end = pe.offsets.section_table + 40 * pe.sections.len();
    assert_eq!((0x400 - table_end) / 40, 7);
}
