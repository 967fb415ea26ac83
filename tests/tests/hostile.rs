//! Hostile-input corpus (issue 7, item 2): every input is generated here, deterministically,
//! and run through the real `nodeimg` CLI (or the library parser for formats the CLI only
//! reaches behind a signed manifest). Each case must fail with exit status 1 and its expected
//! error fragment — or be accepted where the table says so — without a panic, within 60 s and
//! 512 MiB of peak RSS, leaving no output directory behind and nothing in a canary directory outside it.
//! `tests/hostile/README.md` lists the table.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nodeimg_tests::*;

/// Wall-clock bound for every case.
const DEADLINE: Duration = Duration::from_secs(60);

/// The table: (case, input kind, expected error fragment). Kept in step with the README.
const TABLE: &[(&str, &str, &str)] = &[
    ("tar_huge_declared_size", "tar", "truncated"),
    ("tar_million_entries", "tar", "kernel"),
    ("tar_deep_path", "tar", "(accepted: the build completes)"),
    ("tar_symlink_escape", "tar", "which is a symlink"),
    ("tar_hardlink_escape", "tar", "contains `..`"),
    ("tar_hardlink_missing", "tar", "which is not in the rootfs"),
    (
        "oci_device_node_is_accepted",
        "oci",
        "(accepted: /dev/console is a char device 5:1)",
    ),
    ("oci_dotdot_entry", "oci", "contains `..`"),
    (
        "pe_absurd_section_count",
        "pe",
        "runs past the end of the data",
    ),
    ("pe_overlapping_sections", "pe", "overlap"),
    (
        "pe_lfanew_past_end",
        "pe",
        "PE signature at offset 0xfffffff0",
    ),
    (
        "pe_absurd_optional_header_size",
        "pe",
        "no .sdmagic section",
    ),
    (
        "gpt_partition_out_of_disk",
        "gpt",
        "outside the disk's usable area",
    ),
    ("gpt_overlapping_partitions", "gpt", "overlap"),
    ("esp_file_claims_4gib", "esp", "4294967295 bytes claimed"),
    (
        "esp_directory_contains_itself",
        "esp",
        "directories nested more than 16 deep",
    ),
    ("eventlog_lying_size", "eventlog", "runs past the end"),
    (
        "ovmf_cyclic_guid_table",
        "ovmf",
        "OVMF footer table entry length",
    ),
    (
        "tdx_sections_cover_terabytes",
        "ovmf",
        "cover more than 4 GiB of guest memory",
    ),
    ("verity_data_blocks_wrap", "disk", "more than 2^64 bytes"),
    ("eventlog_64mib", "eventlog", "larger than 4194304 bytes"),
    ("ccel_64mib", "ccel", "larger than 4194304 bytes"),
    (
        "ccel_4mib_of_events",
        "ccel",
        "tdx[0] (edk2-202411): the log replays RTMR1",
    ),
    ("snp_vcpus_out_of_range", "cli", "is not in 1..=512"),
    (
        "uki_1tib_sparse",
        "uki",
        "a UKI is at most 1073741824 bytes",
    ),
    (
        "snp_id_key_not_p384",
        "cli",
        "a P-256 key; the SEV-SNP ID and author keys must be ECDSA P-384",
    ),
    ("snp_policy_reserved_bits", "cli", "must be 1 (SEV-SNP ABI)"),
    (
        "snp_family_id_wrong_length",
        "cli",
        "the id is exactly 16 bytes (32 hex digits)",
    ),
    (
        "quote_absurd_selection",
        "quote",
        "more PCR banks than any TPM has",
    ),
    (
        "quote_select_bits",
        "quote",
        "a selection of more than 256 PCRs",
    ),
    ("quote_truncated", "quote", "the structure ends at byte"),
    (
        "quote_hmac_signature",
        "quote",
        "not RSASSA (0x0014), RSAPSS (0x0016) or ECDSA",
    ),
    ("quote_64mib", "quote", "larger than 65536 bytes"),
    ("quote_ak_is_a_certificate", "quote", "not a `PUBLIC KEY`"),
];

fn expected(case: &str) -> &'static str {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == case)
        .map(|(_, _, e)| *e)
        .unwrap_or_else(|| panic!("{case} is not in TABLE"))
}

/// A scratch area: `canary/` (the working directory of nodeimg, and a symlink target of the
/// escape cases) must stay empty, and `out/` must not exist after a failed build.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("canary")).unwrap();
        Scratch { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn canary(&self) -> PathBuf {
        self.path("canary")
    }
    fn out(&self) -> PathBuf {
        self.path("out")
    }
}

/// Peak resident memory any case may reach (the 1 Mi-entry tar needs the most: one tree entry
/// per file, ~200 bytes each).
const MEMORY_KIB: i64 = 512 << 10;

/// Runs `nodeimg ARGS` in `s.canary()` with a 60 s deadline and the [`MEMORY_KIB`] bound on
/// its peak RSS (from `wait4`; the kernel counts the RSS the child had before `exec`, i.e. this
/// test process's, so the bound is conservative); returns (exit code, stderr then stdout).
#[allow(clippy::zombie_processes)] // reaped by `wait4` below, which also gives the rusage
fn run_bounded(s: &Scratch, args: &[&str]) -> (Option<i32>, String) {
    let start = Instant::now();
    let mut child = Command::new(nodeimg())
        .args(args)
        .env_remove("NODEIMG_INIT")
        .current_dir(s.canary())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nodeimg");
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let reader = drain(Box::new(child.stderr.take().unwrap()));
    let out_reader = drain(Box::new(child.stdout.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let (status, rusage) = loop {
        let mut status = 0;
        // SAFETY: plain wait4 on our own child with valid out-pointers; reaps it exactly once
        // (std's Child is not waited on afterwards).
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break (status, ru);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nodeimg {args:?} still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap() + &out_reader.join().unwrap();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let rss = rusage.ru_maxrss;
    eprintln!(
        "nodeimg {args:?}: exit {code:?} (wait status {status:#x}) in {:?}, peak RSS {} MiB",
        start.elapsed(),
        rss >> 10
    );
    assert!(
        rss <= MEMORY_KIB,
        "nodeimg {args:?}: peak RSS {rss} KiB over the {MEMORY_KIB} KiB bound\n{stderr}"
    );
    (code, stderr)
}

/// Asserts a clean refusal: exit 1, `case`'s fragment, no panic, no output, empty canary.
fn assert_refused(s: &Scratch, case: &str, code: Option<i32>, stderr: &str) {
    assert!(
        code != Some(101) && !stderr.contains("panicked"),
        "{case}: nodeimg panicked:\n{stderr}"
    );
    assert_eq!(code, Some(1), "{case}: exit status\n{stderr}");
    let want = expected(case);
    assert!(
        stderr.contains(want),
        "{case}: stderr lacks `{want}`:\n{stderr}"
    );
    assert!(!s.out().exists(), "{case}: output dir left after a failure");
    let left: Vec<_> = std::fs::read_dir(s.canary()).unwrap().collect();
    assert!(
        left.is_empty(),
        "{case}: written outside the output dir: {left:?}"
    );
}

/// Builds a config whose rootfs is the tar `bytes`, runs `nodeimg build`, asserts refusal.
fn build_tar_refused(case: &str, bytes: &[u8]) {
    let s = Scratch::new();
    let tar = s.path("input.tar");
    std::fs::write(&tar, bytes).unwrap();
    let cfg = fixture_config(s.dir.path(), &tar, "");
    let out = s.out();
    let (code, err) = run_bounded(
        &s,
        &["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()],
    );
    assert_refused(&s, case, code, &err);
}

// ---- tar inputs -------------------------------------------------------------------------

/// A raw ustar/GNU header item; `size` is the declared size, `data` what follows.
fn item(out: &mut Vec<u8>, name: &str, kind: u8, link: &str, size: u64, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_size(size);
    h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn end(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn root() -> Vec<u8> {
    let mut t = Vec::new();
    item(&mut t, "./", b'5', "", 0, b"");
    t
}

#[test]
fn tar_huge_declared_size() {
    // A 1 TiB file header (GNU base-256 size) followed by 512 bytes and EOF.
    let mut t = root();
    item(&mut t, "big", b'0', "", 1 << 40, &[0xAA; 512]);
    build_tar_refused("tar_huge_declared_size", &t);
}

#[test]
fn tar_symlink_escape() {
    let s = Scratch::new();
    let mut t = root();
    item(&mut t, "lib", b'2', s.canary().to_str().unwrap(), 0, b"");
    item(&mut t, "lib/x", b'0', "", 5, b"owned");
    let tar = s.path("input.tar");
    std::fs::write(&tar, end(t)).unwrap();
    let cfg = fixture_config(s.dir.path(), &tar, "");
    let out = s.out();
    let (code, err) = run_bounded(
        &s,
        &["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()],
    );
    assert_refused(&s, "tar_symlink_escape", code, &err);
}

#[test]
fn tar_hardlink_escape() {
    let mut t = root();
    item(&mut t, "shadow", b'1', "../etc/shadow", 0, b"");
    build_tar_refused("tar_hardlink_escape", &end(t));
}

#[test]
fn tar_hardlink_missing() {
    let mut t = root();
    item(&mut t, "shadow", b'1', "etc/shadow", 0, b"");
    build_tar_refused("tar_hardlink_missing", &end(t));
}

#[test]
fn tar_million_entries() {
    // 2^20 empty files (512 MiB of headers), streamed to the file so the test process stays
    // small (a child's ru_maxrss starts from its parent's RSS at fork): parsed in bounded
    // memory; the build then stops on the missing kernel.
    use std::io::Write;
    let s = Scratch::new();
    let tar = s.path("input.tar");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tar).unwrap());
    let mut t = root();
    item(&mut t, "d/", b'5', "", 0, b"");
    for i in 0..1 << 20 {
        item(
            &mut t,
            &format!("d/{:03}/f{i:07}", i >> 12),
            b'0',
            "",
            0,
            b"",
        );
        if t.len() >= 1 << 20 {
            f.write_all(&t).unwrap();
            t.clear();
        }
    }
    f.write_all(&end(t)).unwrap();
    f.into_inner().unwrap().sync_all().unwrap();
    let cfg = fixture_config(s.dir.path(), &tar, "");
    let out = s.out();
    let start = Instant::now();
    let (code, err) = run_bounded(
        &s,
        &["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()],
    );
    eprintln!("2^20 entries: {:?}", start.elapsed());
    assert_refused(&s, "tar_million_entries", code, &err);
}

/// The fixture tar up to (not including) its end-of-archive blocks.
fn fixture_without_end(tar: &Path) -> Vec<u8> {
    let bytes = std::fs::read(tar).unwrap();
    let mut end = 0;
    let mut a = tar::Archive::new(&bytes[..]);
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        end = e.raw_file_position() + e.size().div_ceil(512) * 512;
    }
    bytes[..end as usize].to_vec()
}

#[test]
fn tar_deep_path() {
    // The fixture plus one file 5000 directories deep (a 10 000-byte GNU long name) with no
    // explicit parents: accepted, and the build completes in bounded time.
    let Some(fixture) = fixture_tar() else { return };
    let mut b = tar::Builder::new(Vec::new());
    let deep = "a/".repeat(5000) + "f";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(1);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, &deep, &b"x"[..]).unwrap();
    let mut t = fixture_without_end(&fixture);
    t.extend_from_slice(&b.into_inner().unwrap());
    let s = Scratch::new();
    let tar = s.path("input.tar");
    std::fs::write(&tar, t).unwrap();
    let cfg = fixture_config(s.dir.path(), &tar, "");
    let out = s.out();
    let (code, err) = run_bounded(
        &s,
        &["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "tar_deep_path: {err}");
    assert!(out.join("disk.raw").is_file() && out.join("manifest.json").is_file());
    assert!(std::fs::read_dir(s.canary()).unwrap().next().is_none());
}

// ---- OCI layouts ------------------------------------------------------------------------

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let d = sha(bytes);
    let p = dir.join("blobs/sha256").join(&d[7..]);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

/// Writes a one-image OCI layout at `dir` whose single uncompressed layer is `layer`.
fn oci_layout(dir: &Path, layer: &[u8]) {
    let l = blob(dir, "application/vnd.oci.image.layer.v1.tar", layer);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}});
    let c = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let m = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c, "layers": [l]});
    let md = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&m).unwrap(),
    );
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [md]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn oci_device_node_is_accepted() {
    // Device nodes are legitimate rootfs content (/dev/console): the parser keeps them.
    let s = Scratch::new();
    let mut t = root();
    item(&mut t, "dev/", b'5', "", 0, b"");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_path("dev/console").unwrap();
    h.set_mode(0o600);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_device_major(5).unwrap();
    h.set_device_minor(1).unwrap();
    h.set_cksum();
    t.extend_from_slice(h.as_bytes());
    let layout = s.path("layout");
    oci_layout(&layout, &end(t));
    let src = image_config::RootfsSource::Oci {
        dir: layout,
        tag: None,
    };
    let loaded =
        builder::rootfs::load(&src, 1_700_000_000, s.dir.path(), None).expect("OCI layout");
    let e = loaded.tree.get("dev/console").expect("dev/console kept");
    assert!(
        matches!(
            e.kind,
            builder::rootfs::Kind::CharDev { major: 5, minor: 1 }
        ),
        "{:?}",
        e.kind
    );
    assert!(std::fs::read_dir(s.canary()).unwrap().next().is_none());
}

#[test]
fn oci_dotdot_entry() {
    let s = Scratch::new();
    let mut t = root();
    item(&mut t, "../escape", b'0', "", 5, b"owned");
    let layout = s.path("layout");
    oci_layout(&layout, &end(t));
    let text = format!(
        "[image]\nname = \"h\"\nversion = \"1\"\nsource-date-epoch = 1700000000\n\n[rootfs]\noci = \"{}\"\n",
        layout.display()
    );
    let cfg = s.path("image.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = s.out();
    let (code, err) = run_bounded(
        &s,
        &["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()],
    );
    assert_refused(&s, "oci_dotdot_entry", code, &err);
    assert!(!s.dir.path().join("escape").exists());
}

// ---- PE stub ----------------------------------------------------------------------------

const HOST_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// The host stub with `patch(bytes, coff_header_offset, section_table_offset)` applied,
/// built into a UKI from the fixture: the build must refuse it.
fn build_with_patched_stub(case: &str, patch: fn(&mut [u8], usize, usize)) {
    let Some(tar) = fixture_tar() else { return };
    if !have_file(Path::new(HOST_STUB), "apt-get install systemd-boot-efi") {
        return;
    }
    let s = Scratch::new();
    let mut pe = std::fs::read(HOST_STUB).unwrap();
    let e_lfanew = u32::from_le_bytes(pe[0x3c..0x40].try_into().unwrap()) as usize;
    let coff = e_lfanew + 4;
    let opt_size = usize::from(u16::from_le_bytes([pe[coff + 16], pe[coff + 17]]));
    patch(&mut pe, coff, coff + 20 + opt_size);
    let stub = s.path("stub.efi");
    std::fs::write(&stub, pe).unwrap();
    let extra = format!("\n[uki]\nstub = \"{}\"\n", stub.display());
    let cfg = fixture_config(s.dir.path(), &tar, &extra);
    let out = s.out();
    let (code, err) = run_bounded(
        &s,
        &["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()],
    );
    assert_refused(&s, case, code, &err);
}

#[test]
fn pe_absurd_section_count() {
    build_with_patched_stub("pe_absurd_section_count", |pe, coff, _| {
        pe[coff + 2..coff + 4].copy_from_slice(&0xffffu16.to_le_bytes());
    });
}

#[test]
fn pe_lfanew_past_end() {
    build_with_patched_stub("pe_lfanew_past_end", |pe, _, _| {
        pe[0x3c..0x40].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    });
}

#[test]
fn pe_absurd_optional_header_size() {
    // SizeOfOptionalHeader = 0xffff moves the section table onto unrelated bytes.
    build_with_patched_stub("pe_absurd_optional_header_size", |pe, coff, _| {
        pe[coff + 16..coff + 18].copy_from_slice(&0xffffu16.to_le_bytes());
    });
}

#[test]
fn pe_overlapping_sections() {
    // Section 2 gets section 1's VirtualAddress and VirtualSize.
    build_with_patched_stub("pe_overlapping_sections", |pe, _, table| {
        let (first, second) = (table, table + 40);
        let va_and_size: Vec<u8> = pe[first + 8..first + 16].to_vec();
        pe[second + 8..second + 16].copy_from_slice(&va_and_size);
    });
}

// ---- GPT --------------------------------------------------------------------------------

/// The ESP type GUID c12a7328-f81f-11d2-ba4b-00a0c93ec93b as stored on disk.
const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];

/// A 1 MiB disk with a protective MBR and a primary GPT holding `parts` (first, last LBA).
fn gpt_disk(parts: &[(u64, u64)]) -> Vec<u8> {
    const SECTORS: u64 = 2048;
    let mut d = vec![0u8; (SECTORS * 512) as usize];
    d[446 + 4] = 0xee;
    d[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    d[446 + 12..446 + 16].copy_from_slice(&((SECTORS - 1) as u32).to_le_bytes());
    d[510] = 0x55;
    d[511] = 0xaa;
    let mut array = vec![0u8; 128 * 128];
    for (i, &(first, last)) in parts.iter().enumerate() {
        let e = &mut array[i * 128..(i + 1) * 128];
        e[..16].copy_from_slice(&ESP_TYPE);
        e[16..32].copy_from_slice(&[i as u8 + 1; 16]); // unique GUID
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        e[56] = b'p';
    }
    let h = &mut d[512..1024];
    h[..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&1u64.to_le_bytes());
    h[32..40].copy_from_slice(&(SECTORS - 1).to_le_bytes());
    h[40..48].copy_from_slice(&34u64.to_le_bytes());
    h[48..56].copy_from_slice(&(SECTORS - 34).to_le_bytes());
    h[56..72].copy_from_slice(&[0x42; 16]);
    h[72..80].copy_from_slice(&2u64.to_le_bytes());
    h[80..84].copy_from_slice(&128u32.to_le_bytes());
    h[84..88].copy_from_slice(&128u32.to_le_bytes());
    h[88..92].copy_from_slice(&crc32fast::hash(&array).to_le_bytes());
    let crc = crc32fast::hash(&h[..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    d[1024..1024 + array.len()].copy_from_slice(&array);
    d
}

/// Runs `inspect`, `measure disk` and `diff` (against itself) on the disk; all must refuse.
fn gpt_refused(case: &str, parts: &[(u64, u64)]) {
    let s = Scratch::new();
    let disk = s.path("disk.raw");
    std::fs::write(&disk, gpt_disk(parts)).unwrap();
    let d = disk.to_str().unwrap();
    for args in [vec!["inspect", d], vec!["measure", "disk", d]] {
        let (code, err) = run_bounded(&s, &args);
        assert_refused(&s, case, code, &err);
    }
    // `diff` cannot compare a disk whose table is refused (exit 2); it must not panic either.
    let other = s.path("other.raw");
    let mut bytes = gpt_disk(parts);
    bytes[600_000] ^= 1;
    std::fs::write(&other, bytes).unwrap();
    let (code, err) = run_bounded(&s, &["diff", d, other.to_str().unwrap()]);
    assert!(
        code == Some(2) && !err.contains("panicked"),
        "{case}: diff {code:?}\n{err}"
    );
}

#[test]
fn gpt_partition_out_of_disk() {
    gpt_refused("gpt_partition_out_of_disk", &[(34, 1_000_000)]);
}

#[test]
fn gpt_overlapping_partitions() {
    gpt_refused("gpt_overlapping_partitions", &[(100, 200), (150, 250)]);
}

// ---- ESP (FAT) inside a real disk -----------------------------------------------------

/// Builds the fixture image into `s/img`; returns (disk path, ESP offset in the disk).
fn fixture_disk(s: &Scratch) -> Option<(PathBuf, usize)> {
    let tar = fixture_tar()?;
    let cfg = fixture_config(s.dir.path(), &tar, "");
    let img = s.path("img");
    let out = run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    assert_ok(&out, "building the fixture image");
    let disk = img.join("disk.raw");
    let f = std::fs::File::open(&disk).unwrap();
    let parts = builder::disk::read(f).unwrap();
    let esp = parts
        .iter()
        .find(|p| p.type_guid == builder::disk::TYPE_ESP)
        .expect("ESP");
    Some((disk, esp.offset as usize))
}

/// Offset of the 8.3 directory entry `name` inside the ESP starting at `esp`.
fn short_entry(disk: &[u8], esp: usize, name: &[u8; 11]) -> usize {
    esp + disk[esp..]
        .windows(11)
        .position(|w| w == name)
        .expect("directory entry in the ESP")
}

/// Writes a corrupted copy of the fixture disk, then runs `inspect`, `measure disk` (both must
/// refuse with `case`'s fragment unless `diff_only`) and `diff good bad` (exit 1, the ESP
/// reported unreadable with the fragment).
fn esp_refused(case: &str, diff_only: bool, corrupt: fn(&mut [u8], usize)) {
    let s = Scratch::new();
    let Some((good, esp)) = fixture_disk(&s) else {
        return;
    };
    let mut bytes = std::fs::read(&good).unwrap();
    corrupt(&mut bytes, esp);
    let bad = s.path("bad.raw");
    std::fs::write(&bad, bytes).unwrap();
    let b = bad.to_str().unwrap();
    for args in [vec!["inspect", b], vec!["measure", "disk", b]] {
        let (code, err) = run_bounded(&s, &args);
        if diff_only {
            assert!(
                code == Some(1) && err.contains("error:") && !err.contains("panicked"),
                "{case}: {args:?}: {code:?}\n{err}"
            );
        } else {
            assert_refused(&s, case, code, &err);
        }
    }
    let (code, out) = run_bounded(&s, &["diff", good.to_str().unwrap(), b]);
    assert!(
        code == Some(1) && out.contains("unreadable") && out.contains(expected(case)),
        "{case}: diff {code:?}\n{out}"
    );
}

#[test]
fn esp_file_claims_4gib() {
    esp_refused("esp_file_claims_4gib", false, |d, esp| {
        let e = short_entry(d, esp, b"BOOTX64 EFI");
        d[e + 28..e + 32].copy_from_slice(&u32::MAX.to_le_bytes());
    });
}

#[test]
fn esp_directory_contains_itself() {
    esp_refused("esp_directory_contains_itself", true, |d, esp| {
        // BOOT's first cluster (high word at +20, low word at +26) := EFI's.
        let boot = short_entry(d, esp, b"BOOT       ");
        let efi = short_entry(d, esp, b"EFI        ");
        for r in [20..22, 26..28] {
            let v = d[efi + r.start..efi + r.end].to_vec();
            d[boot + r.start..boot + r.end].copy_from_slice(&v);
        }
    });
}

// ---- TCG2 event log (library parser: `verify --event-log` needs a signed manifest) ------

#[test]
fn eventlog_lying_size() {
    // The Spec ID record claims 0xffff_fff0 bytes of event data; 40 bytes follow.
    let mut log = Vec::new();
    log.extend_from_slice(&0u32.to_le_bytes()); // PCR 0
    log.extend_from_slice(&3u32.to_le_bytes()); // EV_NO_ACTION
    log.extend_from_slice(&[0u8; 20]);
    log.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    log.extend_from_slice(b"Spec ID Event03\0");
    log.extend_from_slice(&[0u8; 24]);
    let start = Instant::now();
    let err = measurements::eventlog::EventLog::parse(&log).expect_err("lying size accepted");
    assert!(start.elapsed() < DEADLINE);
    let want = expected("eventlog_lying_size");
    assert!(err.to_string().contains(want), "{err}");
}

// ---- OVMF footer GUID table -------------------------------------------------------------

/// 64 KiB of firmware whose footer table holds one entry of length 0, which a naive walk
/// would revisit forever.
fn ovmf_cyclic_table() -> Vec<u8> {
    const FOOTER: [u8; 16] = [
        0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08,
        0x2d,
    ];
    let mut fw = vec![0xffu8; 64 * 1024];
    let footer = fw.len() - 0x20 - 18;
    fw[footer..footer + 2].copy_from_slice(&36u16.to_le_bytes());
    fw[footer + 2..footer + 18].copy_from_slice(&FOOTER);
    let entry = footer - 18;
    fw[entry..entry + 2].copy_from_slice(&0u16.to_le_bytes());
    fw[entry + 2..entry + 18].copy_from_slice(&[0x5a; 16]);
    fw
}

#[test]
fn ovmf_cyclic_guid_table() {
    let s = Scratch::new();
    let fw = s.path("OVMF.fd");
    std::fs::write(&fw, ovmf_cyclic_table()).unwrap();
    let f = fw.to_str().unwrap();
    for mode in ["snp", "snp:ovmf-hash"] {
        let (code, err) = run_bounded(
            &s,
            &[
                "measure", "snp", "--mode", mode, "--ovmf", f, "--vcpus", "1",
            ],
        );
        assert_refused(&s, "ovmf_cyclic_guid_table", code, &err);
    }
}

/// 64 KiB of firmware whose TDVF metadata lists 1500 TEMP_MEM sections of 4 GiB each: 6 TiB
/// of pages, a 128-byte MRTD record per 4 KiB page (hours of hashing without a bound).
fn tdx_huge_sections() -> Vec<u8> {
    const FOOTER: [u8; 16] = [
        0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08,
        0x2d,
    ];
    // e47a6535-984a-4798-865e-4685a7bf8ec2 as stored.
    const TDX: [u8; 16] = [
        0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e,
        0xc2,
    ];
    const SECTIONS: usize = 1500;
    let mut fw = vec![0xffu8; 64 * 1024];
    let len = fw.len();
    let desc = 0x1000;
    fw[desc..desc + 4].copy_from_slice(b"TDVF");
    fw[desc + 4..desc + 8].copy_from_slice(&((16 + 32 * SECTIONS) as u32).to_le_bytes());
    fw[desc + 8..desc + 12].copy_from_slice(&1u32.to_le_bytes());
    fw[desc + 12..desc + 16].copy_from_slice(&(SECTIONS as u32).to_le_bytes());
    for i in 0..SECTIONS {
        let e = desc + 16 + 32 * i;
        fw[e..e + 8].copy_from_slice(&[0; 8]); // DataOffset, RawDataSize
        fw[e + 8..e + 16].copy_from_slice(&((i as u64) << 32).to_le_bytes());
        fw[e + 16..e + 24].copy_from_slice(&(1u64 << 32).to_le_bytes());
        fw[e + 24..e + 28].copy_from_slice(&3u32.to_le_bytes()); // TEMP_MEM
        fw[e + 28..e + 32].copy_from_slice(&0u32.to_le_bytes());
    }
    // Footer table: one entry (u32 offset of the descriptor from the end), then the footer.
    let footer = len - 0x20 - 18;
    fw[footer..footer + 2].copy_from_slice(&(18u16 + 22).to_le_bytes());
    fw[footer + 2..footer + 18].copy_from_slice(&FOOTER);
    let entry = footer - 18;
    fw[entry..entry + 2].copy_from_slice(&22u16.to_le_bytes());
    fw[entry + 2..entry + 18].copy_from_slice(&TDX);
    fw[entry - 4..entry].copy_from_slice(&((len - desc) as u32).to_le_bytes());
    fw
}

#[test]
fn tdx_sections_cover_terabytes() {
    let s = Scratch::new();
    let fw = s.path("OVMF.fd");
    std::fs::write(&fw, tdx_huge_sections()).unwrap();
    let f = fw.to_str().unwrap();
    for two_pass in [false, true] {
        let mut args = vec!["measure", "tdx", "--ovmf", f];
        if two_pass {
            args.push("--two-pass");
        }
        let (code, err) = run_bounded(&s, &args);
        assert_refused(&s, "tdx_sections_cover_terabytes", code, &err);
    }
}

/// Offset of the verity superblock in a fixture disk.
fn verity_superblock(disk: &[u8]) -> usize {
    disk.windows(16)
        .position(|w| w == b"verity\0\0\x01\0\0\0\x01\0\0\0")
        .expect("verity superblock")
}

#[test]
fn verity_data_blocks_wrap() {
    // data_blocks + 2^52: times the 4096-byte block size it wraps to the true size, so a
    // wrapping multiplication would "verify" a disk nodeimg-init refuses to boot.
    let s = Scratch::new();
    let Some((good, _)) = fixture_disk(&s) else {
        return;
    };
    let mut d = std::fs::read(&good).unwrap();
    let sb = verity_superblock(&d);
    let blocks = u64::from_le_bytes(d[sb + 72..sb + 80].try_into().unwrap());
    d[sb + 72..sb + 80].copy_from_slice(&(blocks + (1 << 52)).to_le_bytes());
    let bad = s.path("bad.raw");
    std::fs::write(&bad, d).unwrap();
    let (code, out) = run_bounded(&s, &["inspect", bad.to_str().unwrap()]);
    assert_eq!(
        code,
        Some(1),
        "inspect approved a wrapping data-block count:\n{out}"
    );
    assert!(out.contains(expected("verity_data_blocks_wrap")), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn eventlog_64mib() {
    // A signed fixture manifest and a 64 MiB "event log": refused by size, not parsed.
    let s = Scratch::new();
    let Some((manifest, key)) = signed_fixture(&s, "") else {
        return;
    };
    let log = s.path("log.bin");
    std::fs::File::create(&log)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    refused_verify(&s, &manifest, &key, "--event-log", &log, "eventlog_64mib");
}

/// A signed fixture build with `extra` TOML (e.g. a TDX entry for the CC event log cases);
/// returns its manifest and the public key.
fn signed_fixture(s: &Scratch, extra: &str) -> Option<(PathBuf, PathBuf)> {
    let tar = fixture_tar()?;
    let key = s.path("k");
    assert_ok(
        &run_nodeimg(&["keygen", "-o", key.to_str().unwrap()]),
        "keygen",
    );
    let img = build_fixture(
        s.dir.path(),
        &tar,
        &format!("{extra}\n[signing]\nkey = \"{}\"\n", key.display()),
        s.path("img"),
        "signed fixture build",
    );
    Some((img.join("manifest.json"), s.path("k.pub")))
}

/// A signed fixture build with a TDX entry (RTMRs), for the CC event log cases.
fn signed_tdx_fixture(s: &Scratch) -> Option<(PathBuf, PathBuf)> {
    signed_fixture(
        s,
        &format!(
            "\n[measurements.tdx]\novmf = [\"{}\"]\n",
            ovmf_prebuilt::ovmf_pure_efi().display()
        ),
    )
}

#[test]
fn ccel_64mib() {
    // A 64 MiB "CC event log": refused by size, not parsed.
    let s = Scratch::new();
    let Some((manifest, key)) = signed_tdx_fixture(&s) else {
        return;
    };
    let log = s.path("ccel.bin");
    std::fs::File::create(&log)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    refused_verify(&s, &manifest, &key, "--ccel", &log, "ccel_64mib");
}

/// `verify MANIFEST --key KEY FLAG FILE` within the bounds: exit 1 with the case's fragment.
fn refused_verify(s: &Scratch, manifest: &Path, key: &Path, flag: &str, file: &Path, case: &str) {
    let (code, out) = run_bounded(
        s,
        &[
            "verify",
            manifest.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            flag,
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(expected(case)), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn ccel_4mib_of_events() {
    // Just under the 4 MiB cap: ~63 000 RTMR1 events with no data, all parsed and replayed.
    let s = Scratch::new();
    let Some((manifest, key)) = signed_tdx_fixture(&s) else {
        return;
    };
    // RTMR1 separators of 66 bytes each (header 62 + 4 bytes of data).
    let one = (2u32, 4u32, vec![0x5au8; 48]);
    let per_event =
        ccel_log(&[one.clone(), one.clone()]).len() - ccel_log(std::slice::from_ref(&one)).len();
    let n = ((4 << 20) - ccel_log(&[]).len()) / per_event;
    let path = s.path("ccel.bin");
    std::fs::write(&path, ccel_log(&vec![one; n])).unwrap();
    refused_verify(&s, &manifest, &key, "--ccel", &path, "ccel_4mib_of_events");
}

#[test]
fn uki_1tib_sparse() {
    // A sparse file claiming 1 TiB given to `measure uki` / `measure tdx --uki`: refused by
    // size, neither read nor mapped and hashed.
    let s = Scratch::new();
    let uki = s.path("huge.efi");
    std::fs::File::create(&uki)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let u = uki.to_str().unwrap();
    // Debian's OVMF.fd has TDVF metadata (`measure tdx` reads the firmware first).
    let ovmf = "/usr/share/ovmf/OVMF.fd";
    let mut cases = vec![vec!["measure", "uki", u]];
    if Path::new(ovmf).exists() {
        cases.push(vec!["measure", "tdx", "--ovmf", ovmf, "--uki", u]);
    }
    for args in cases {
        let (code, out) = run_bounded(&s, &args);
        assert_refused(&s, "uki_1tib_sparse", code, &out);
    }
}

#[test]
fn snp_vcpus_out_of_range() {
    let s = Scratch::new();
    for n in ["0", "513", "4294967295"] {
        let (code, out) = run_bounded(
            &s,
            &[
                "measure",
                "snp",
                "--ovmf",
                "/nonexistent",
                "--vcpus",
                n,
                "--vcpu-type",
                "EPYC-v4",
            ],
        );
        assert_eq!(code, Some(2), "--vcpus {n} is a usage error:\n{out}");
        assert!(out.contains(expected("snp_vcpus_out_of_range")), "{out}");
    }
}

fn snp_fixture(name: &str) -> String {
    repo()
        .join("measurements/tests/data/cvm")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

/// `measure snp` on the 4 KiB AmdSev fixture with `extra` flags.
fn snp_with(s: &Scratch, extra: &[&str]) -> (Option<i32>, String) {
    let ovmf = snp_fixture("ovmf_AmdSev_suffix.bin");
    let mut args = vec![
        "measure",
        "snp",
        "--ovmf",
        &ovmf,
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
    ];
    args.extend_from_slice(extra);
    run_bounded(s, &args)
}

#[test]
fn snp_id_key_not_p384() {
    let s = Scratch::new();
    let p256 = snp_fixture("p256key.pem");
    for flags in [
        vec!["--id-key", &p256],
        vec!["--id-key", &p256[..p256.len() - "p256key.pem".len()]],
    ] {
        let (code, out) = snp_with(&s, &flags);
        assert_eq!(code, Some(1), "{out}");
        assert!(!out.contains("panicked"), "{out}");
        if flags[1].ends_with(".pem") {
            assert!(out.contains(expected("snp_id_key_not_p384")), "{out}");
            assert!(out.contains("--id-key"), "{out}");
        }
    }
    // The author key too, named by its flag.
    let id = snp_fixture("idkey.pem");
    let (code, out) = snp_with(&s, &["--id-key", &id, "--author-key", &p256]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("--author-key") && out.contains("a P-256 key"),
        "{out}"
    );
}

#[test]
fn snp_policy_reserved_bits() {
    let s = Scratch::new();
    for (p, want) in [
        ("0x10000", expected("snp_policy_reserved_bits")),
        ("0x0", expected("snp_policy_reserved_bits")),
        ("0x4030000", "reserved bits 0x4000000 set"),
        ("0x8000000000030000", "reserved bits 0x8000000000000000 set"),
        ("smt,debgu", "unknown field `debgu`"),
    ] {
        let (code, out) = snp_with(&s, &["--policy", p]);
        assert_eq!(code, Some(2), "--policy {p} is a usage error:\n{out}");
        assert!(out.contains(want), "{out}");
    }
}

#[test]
fn snp_family_id_wrong_length() {
    let s = Scratch::new();
    let id = snp_fixture("idkey.pem");
    for (flag, v) in [
        ("--family-id", "00112233"),
        ("--family-id", &"00".repeat(17)),
        ("--image-id", &"0".repeat(31)),
    ] {
        let (code, out) = snp_with(&s, &["--id-key", &id, flag, v]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(flag), "{out}");
        assert!(
            out.contains(expected("snp_family_id_wrong_length")) || out.contains("not hex"),
            "{out}"
        );
    }
}

/// A signed fake manifest (keygen + sign, no build) and a valid AK, for the quote cases:
/// (manifest, public key, AK PEM).
fn signed_fake_manifest(s: &Scratch) -> (String, String, String) {
    let m = s.path("manifest.json");
    std::fs::write(
        &m,
        r#"{"schema":"nodeimg.manifest/v1","artifacts":{},"pcrs":{"sha256":{"4":"00"}}}"#,
    )
    .unwrap();
    let key = s.path("k");
    assert_ok(
        &run_nodeimg(&["keygen", "-o", key.to_str().unwrap()]),
        "keygen",
    );
    assert_ok(
        &run_nodeimg(&["sign", m.to_str().unwrap(), "--key", key.to_str().unwrap()]),
        "sign",
    );
    // An AK: any SPKI PEM of a supported key (a P-256 key from keygen).
    let ak = s.path("ak");
    assert_ok(
        &run_nodeimg(&[
            "keygen",
            "-o",
            ak.to_str().unwrap(),
            "--algorithm",
            "ecdsa-p256",
        ]),
        "keygen ak",
    );
    (
        m.to_str().unwrap().into(),
        format!("{}.pub", key.display()),
        format!("{}.pub", ak.display()),
    )
}

/// `verify --quote MSG --quote-signature SIG` of the fake manifest; (exit code, output).
fn verify_quote_bytes(
    case: &str,
    msg: &[u8],
    sig: &[u8],
    ak: Option<&[u8]>,
) -> (Option<i32>, String) {
    let s = Scratch::new();
    let (m, key, ak_pem) = signed_fake_manifest(&s);
    let (mp, sp) = (
        s.path(&format!("{case}.msg")),
        s.path(&format!("{case}.sig")),
    );
    std::fs::write(&mp, msg).unwrap();
    std::fs::write(&sp, sig).unwrap();
    let ak_path = match ak {
        Some(bytes) => {
            let p = s.path("ak-given.pem");
            std::fs::write(&p, bytes).unwrap();
            p.to_str().unwrap().to_string()
        }
        None => ak_pem,
    };
    run_bounded(
        &s,
        &[
            "verify",
            &m,
            "--key",
            &key,
            "--quote",
            mp.to_str().unwrap(),
            "--quote-signature",
            sp.to_str().unwrap(),
            "--ak",
            &ak_path,
            "--nonce",
            "00",
        ],
    )
}

/// A TPMS_ATTEST header (magic, quote type, empty name, 1-byte nonce, clock info, firmware).
fn quote_head() -> Vec<u8> {
    let mut v = vec![0xff, 0x54, 0x43, 0x47, 0x80, 0x18, 0, 0, 0, 1, 0];
    v.extend([0u8; 17 + 8]);
    v
}

const ECDSA_SIG: &[u8] = &[0x00, 0x18, 0x00, 0x0b, 0x00, 0x01, 0x01, 0x00, 0x01, 0x01];

#[test]
fn quote_absurd_selection() {
    let mut msg = quote_head();
    msg.extend(u32::MAX.to_be_bytes());
    let (code, out) = verify_quote_bytes("count", &msg, ECDSA_SIG, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(expected("quote_absurd_selection")), "{out}");
}

#[test]
fn quote_select_bits() {
    let mut msg = quote_head();
    msg.extend(1u32.to_be_bytes());
    msg.extend([0x00, 0x0b, 0xff]);
    msg.extend([0xff; 255]);
    let (code, out) = verify_quote_bytes("select", &msg, ECDSA_SIG, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(expected("quote_select_bits")), "{out}");
}

#[test]
fn quote_truncated() {
    let msg = quote_head();
    let (code, out) = verify_quote_bytes("truncated", &msg[..msg.len() - 3], ECDSA_SIG, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(expected("quote_truncated")), "{out}");
}

#[test]
fn quote_hmac_signature() {
    let mut msg = quote_head();
    msg.extend(0u32.to_be_bytes());
    msg.extend([0, 0]);
    let hmac = [0x00, 0x05, 0x00, 0x0b, 0x00, 0x00];
    let (code, out) = verify_quote_bytes("hmac", &msg, &hmac, None);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(expected("quote_hmac_signature")), "{out}");
}

#[test]
fn quote_64mib() {
    let s = Scratch::new();
    let (m, key, ak) = signed_fake_manifest(&s);
    let big = s.path("big.msg");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let (code, out) = run_bounded(
        &s,
        &[
            "verify",
            &m,
            "--key",
            &key,
            "--quote",
            big.to_str().unwrap(),
            "--quote-signature",
            big.to_str().unwrap(),
            "--ak",
            &ak,
            "--nonce",
            "00",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(expected("quote_64mib")), "{out}");
}

#[test]
fn quote_ak_is_a_certificate() {
    let cert = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    let (code, out) = verify_quote_bytes("cert", &quote_head(), ECDSA_SIG, Some(cert));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(expected("quote_ak_is_a_certificate")), "{out}");
}

#[test]
fn table_and_readme_agree() {
    let readme = std::fs::read_to_string(repo().join("tests/hostile/README.md")).unwrap();
    for (name, _, want) in TABLE {
        assert!(
            readme.contains(&format!("`{name}`")) && readme.contains(want),
            "tests/hostile/README.md lacks {name} / {want}"
        );
    }
}
