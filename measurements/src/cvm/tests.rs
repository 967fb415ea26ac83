//! Known-answer tests on the 4 KiB fixtures `ovmf_AmdSev_suffix.bin` (A) and
//! `ovmf_OvmfX64_suffix.bin` (X): the last page of edk2-stable202405 AmdSevX64 / OvmfPkgX64
//! `OVMF.fd`, byte-identical in sev-snp-measure's repository and the `sev` 8.0.0 crate
//! package (`tests/measurement/`). Every expected value comes from sev-snp-measure's
//! `tests/test_guest.py` (state of 0.0.13), which the `sev` crate's `tests/measurement.rs`
//! repeats; the intermediate VMSA hashes were printed by sev-snp-measure 0.0.13 `--dump-vmsa`.
//! Then corrupt-firmware cases: errors, never panics.

use sha2::{Digest as _, Sha256, Sha384};

use super::*;

const A: &[u8] = include_bytes!("../../tests/data/cvm/ovmf_AmdSev_suffix.bin");
const X: &[u8] = include_bytes!("../../tests/data/cvm/ovmf_OvmfX64_suffix.bin");
const EPYC_V4: VcpuSignature = VcpuSignature(0x0080_0F12);
const APPEND: &str = "console=ttyS0 loglevel=7";

#[test]
fn fixtures_are_the_published_files() {
    assert_eq!(
        hex::encode(Sha256::digest(A)),
        "8f765dfabc127fc0a938a0744a3103ec15864d7d794eb4c398aa976b6d6ab16c"
    );
    assert_eq!(
        hex::encode(Sha256::digest(X)),
        "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da"
    );
}

#[test]
fn fixture_metadata_matches_the_spec_table() {
    let fw = Ovmf::parse(A).unwrap();
    assert_eq!(fw.sev_es_reset_eip().unwrap(), Some(0x0080_B004));
    assert_eq!(fw.sev_hash_table_gpa().unwrap(), Some(0x0081_0C00));
    let got: Vec<(u32, u32, u32)> = fw
        .sev_metadata()
        .unwrap()
        .iter()
        .map(|s| (s.gpa, s.size, s.kind))
        .collect();
    let want = [
        (0x800000, 0x9000, 1),
        (0x80a000, 0x3000, 1),
        (0x80d000, 0x1000, 2),
        (0x80e000, 0x1000, 3),
        (0x80f000, 0x1000, 4),
        (0x810000, 0x1000, 0x10),
        (0x811000, 0xf000, 1),
    ];
    assert_eq!(got, want);
    let x = Ovmf::parse(X).unwrap();
    assert_eq!(x.sev_hash_table_gpa().unwrap(), Some(0));
    assert!(!x.supports_sev_hashes().unwrap());
}

fn hashes(append: &str) -> Option<SevHashes> {
    Some(SevHashes::new(b"", Some(b""), Some(append)))
}

struct SnpCase {
    fw: &'static [u8],
    vcpus: u32,
    features: u64,
    kernel: Option<SevHashes>,
    vmm: VmmType,
    seeded: bool,
    want: &'static str,
}

fn snp_cases() -> Vec<SnpCase> {
    let c = |fw, vcpus, features, kernel, vmm, seeded, want| SnpCase {
        fw,
        vcpus,
        features,
        kernel,
        vmm,
        seeded,
        want,
    };
    use VmmType::*;
    vec![
        c(A, 1, 0x21, hashes(APPEND), Qemu, false, "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"),
        c(A, 1, 0x1, hashes(APPEND), Qemu, false, "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"),
        c(A, 1, 0x21, hashes(""), Qemu, true, "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"),
        c(A, 1, 0x1, hashes(""), Qemu, true, "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5"),
        c(A, 1, 0x21, None, Qemu, false, "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"),
        c(A, 1, 0x1, None, Qemu, false, "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"),
        c(A, 4, 0x21, hashes(""), Qemu, false, "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"),
        c(A, 4, 0x1, hashes(""), Qemu, false, "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"),
        c(X, 1, 0x21, None, Qemu, false, "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"),
        c(X, 1, 0x1, None, Qemu, false, "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"),
        // EC2 as of sev-snp-measure 0.0.13 (RDX 0x600); the `sev` crate still has the ≤ 0.0.12 values.
        c(A, 1, 0x21, hashes(""), Ec2, false, "0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb"),
        c(A, 1, 0x1, hashes(""), Ec2, false, "0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056"),
        c(A, 1, 0x1, hashes(""), Gce, false, "5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e"),
        c(A, 4, 0x1, hashes(""), Gce, false, "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d"),
    ]
}

const A_OVMF_HASH: &str = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";

#[test]
fn snp_ovmf_hash_of_fixture_a() {
    let h = snp::ovmf_hash(&Ovmf::parse(A).unwrap()).unwrap();
    assert_eq!(h.hex(), A_OVMF_HASH);
}

#[test]
fn snp_known_answers() {
    for (i, c) in snp_cases().into_iter().enumerate() {
        let fw = Ovmf::parse(c.fw).unwrap();
        let launch = SnpLaunch {
            vcpus: c.vcpus,
            vcpu_sig: EPYC_V4,
            guest_features: GuestFeatures(c.features),
            vmm: c.vmm,
            kernel_hashes: c.kernel,
            ovmf_hash: c
                .seeded
                .then(|| OvmfHash::from_hex("ovmf hash", A_OVMF_HASH).unwrap()),
        };
        let got = snp::launch_digest(&fw, &launch).unwrap();
        assert_eq!(
            got.hex(),
            c.want,
            "case {i} ({} vCPUs, {:?})",
            c.vcpus,
            c.vmm
        );
    }
}

#[test]
fn snp_kernel_without_kernel_hashes_section_is_refused() {
    let fw = Ovmf::parse(X).unwrap();
    let launch = SnpLaunch {
        vcpus: 1,
        vcpu_sig: EPYC_V4,
        guest_features: GuestFeatures(0x21),
        vmm: VmmType::Qemu,
        kernel_hashes: hashes(""),
        ovmf_hash: None,
    };
    let e = snp::launch_digest(&fw, &launch).unwrap_err().to_string();
    assert!(e.contains("doesn't include SNP_KERNEL_HASHES"), "{e}");
}

#[test]
fn vmsa_hashes_of_fixture_a() {
    let fw = Ovmf::parse(A).unwrap();
    let v = snp::vmsas(&fw, 2, GuestFeatures(1), EPYC_V4, VmmType::Qemu).unwrap();
    let h = |i| hex::encode(Sha384::digest(v.page(i).unwrap()));
    assert_eq!(h(0), "77920c4c629ff47e90c0e174fc1ad0eb6fa664f88cd4739488058a8c6cb1a77b3856f55378e9518d0da99452d51c553a");
    assert_eq!(h(1), "8413b852790765a310d95867a8b00bfca3a802b5a80830044b45e253fe96222657e11e53fcf63eb0e0afd722385bf7b4");
}

#[test]
fn seves_and_sev_known_answers() {
    let a = Ovmf::parse(A).unwrap();
    let seves = |n| sev::seves_launch_digest(&a, n, EPYC_V4, VmmType::Qemu, hashes("").as_ref());
    assert_eq!(
        seves(1).unwrap().hex(),
        "13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c"
    );
    assert_eq!(
        seves(4).unwrap().hex(),
        "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91"
    );
    let sev = |k: Option<SevHashes>| sev::sev_launch_digest(&a, k.as_ref()).unwrap().hex();
    assert_eq!(
        sev(hashes(APPEND)),
        "82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff"
    );
    assert_eq!(
        sev(Some(SevHashes::new(b"", None, None))),
        "77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898"
    );
    let x = Ovmf::parse(X).unwrap();
    assert_eq!(
        sev::sev_launch_digest(&x, None).unwrap().hex(),
        "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da"
    );
    let e = sev::sev_launch_digest(&x, hashes("").as_ref()).unwrap_err();
    assert!(e.to_string().contains("doesn't support kernel"), "{e}");
}

#[test]
fn typestate_digest_reads_only_when_completed() {
    let mut ld = LaunchDigest::new();
    ld.normal_pages(0xFFFF_F000, A);
    assert_eq!(ld.finish().ovmf_hash().hex(), A_OVMF_HASH);
}

// ---- corrupt firmware: clear errors, no panics ----

/// Fixture A with `patch` applied at `offset`.
fn patched(offset: usize, patch: &[u8]) -> Vec<u8> {
    let mut v = A.to_vec();
    v[offset..offset + patch.len()].copy_from_slice(patch);
    v
}

fn err_of(data: &[u8], f: impl Fn(&Ovmf) -> Result<(), CvmError>) -> String {
    match Ovmf::parse(data) {
        Err(e) => e.to_string(),
        Ok(fw) => f(&fw).expect_err("corrupt firmware accepted").to_string(),
    }
}

/// A computation run on a corrupt image.
type Check = dyn Fn(&Ovmf) -> Result<(), CvmError>;

fn snp_of(fw: &Ovmf) -> Result<(), CvmError> {
    let launch = SnpLaunch {
        vcpus: 2,
        vcpu_sig: EPYC_V4,
        guest_features: GuestFeatures(1),
        vmm: VmmType::Qemu,
        kernel_hashes: None,
        ovmf_hash: None,
    };
    snp::launch_digest(fw, &launch).map(drop)
}

#[test]
fn corrupt_firmware_errors() {
    let n = A.len();
    let mrtd = |fw: &Ovmf| tdx::mrtd(fw, MrtdOrder::SinglePass).map(drop);
    let cases: Vec<(&str, Vec<u8>, &Check, &str)> = vec![
        (
            "truncated to 40 bytes",
            A[..40].to_vec(),
            &snp_of,
            "OVMF footer entry at offset -0xa",
        ),
        (
            "truncated to 1 KiB",
            A[n - 1024..].to_vec(),
            &snp_of,
            "SEV metadata header at offset -0x154",
        ),
        (
            "not page-sized",
            A[1..].to_vec(),
            &snp_of,
            "not a multiple of 4096",
        ),
        (
            "footer GUID missing",
            patched(n - 0x30, &[0; 16]),
            &snp_of,
            "no SEV-ES reset block",
        ),
        (
            "table longer than the file",
            patched(n - 0x32, &[0xff, 0xff]),
            &snp_of,
            "OVMF footer table at offset",
        ),
        (
            "entry length 3",
            patched(0xfb8 + 4, &[3, 0]),
            &snp_of,
            "entry length at offset 0xfbc: expected 18",
        ),
        (
            "SEV metadata offset out of range",
            patched(0xf6e, &[0, 0, 1, 0]),
            &snp_of,
            "SEV metadata header at offset -0xf000",
        ),
        (
            "ASEV signature",
            patched(n - 0x554, b"XSEV"),
            &snp_of,
            "expected \"ASEV\"",
        ),
        (
            "ASEV version",
            patched(n - 0x554 + 8, &[2]),
            &snp_of,
            "SEV metadata version",
        ),
        (
            "items past the end",
            patched(
                n - 0x554 + 4,
                &[0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0xff, 0xff, 0, 0],
            ),
            &snp_of,
            "SEV metadata items at offset",
        ),
        (
            "unknown section type",
            patched(n - 0x554 + 16 + 8, &[9]),
            &snp_of,
            "unknown section type",
        ),
        (
            "unaligned section",
            patched(n - 0x554 + 16 + 4, &[1, 0x90]),
            &snp_of,
            "not a multiple of 4096",
        ),
        (
            "entry length off by one",
            patched(0xfb8 + 4, &[19, 0]),
            &snp_of,
            "entry length",
        ),
        (
            "TDX section past the end",
            A.to_vec(),
            &mrtd,
            "runs past the end of the 4096-byte firmware",
        ),
        (
            "TDX offset out of range",
            patched(0xf58, &[0xff, 0xff, 0xff, 0xff]),
            &mrtd,
            "TDX metadata descriptor at offset",
        ),
        (
            "no TDX metadata",
            X[..].to_vec().tap_guid(0xf58 + 6),
            &mrtd,
            "no TDX metadata",
        ),
    ];
    for (name, data, f, want) in cases {
        let e = err_of(&data, f);
        eprintln!("{name}: {e}");
        assert!(e.contains(want), "{name}: {e}");
    }
}

trait TapGuid {
    fn tap_guid(self, at: usize) -> Self;
}

impl TapGuid for Vec<u8> {
    /// Flips one byte of a footer-table GUID so the entry is no longer recognised.
    fn tap_guid(mut self, at: usize) -> Self {
        self[at] ^= 0xff;
        self
    }
}

#[test]
fn corrupt_inputs_never_panic() {
    // Every single-byte change of the last 0x600 bytes (footer table and metadata), three values each.
    for off in A.len() - 0x600..A.len() {
        for v in [0x00, 0xff, A[off] ^ 0x10] {
            let mut d = A.to_vec();
            d[off] = v;
            fuzz_ovmf_metadata(&d);
        }
    }
    for len in 0..=A.len() {
        fuzz_ovmf_metadata(&A[A.len() - len..]);
    }
}

#[test]
fn guid_constants_match_their_published_spelling() {
    use ovmf::*;
    for (g, want) in [
        (FOOTER_GUID, "96b582de-1fb2-45f7-baea-a366c55a082d"),
        (
            SEV_ES_RESET_BLOCK_GUID,
            "00f771de-1a7e-4fcb-890e-68c77e2fb44e",
        ),
        (SEV_HASH_TABLE_GUID, "7255371f-3a3b-4b04-927b-1da6efa8d454"),
        (SEV_METADATA_GUID, "dc886566-984a-4798-a75e-5585a7bf67cc"),
        (SVSM_INFO_GUID, "a789a612-0597-4c4b-a49f-cbb1fe9d1ddd"),
        (TDX_METADATA_GUID, "e47a6535-984a-4798-865e-4685a7bf8ec2"),
    ] {
        assert_eq!(g.to_string(), want);
    }
    // On-disk form: the first three fields little-endian (edk2 / Python `uuid.bytes_le`).
    assert_eq!(
        hex::encode(FOOTER_GUID.0),
        "de82b596b21ff745baeaa366c55a082d"
    );
}
