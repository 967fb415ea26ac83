//! Helpers shared by the end-to-end tests: locating binaries and fixtures, running nodeimg,
//! and the skip policy (a missing tool or privilege is a loud skip locally and a failure
//! when `NODEIMG_REQUIRE_TOOLS=1` / `NODEIMG_REQUIRE_ROOT=1`, as `.ci/run` sets).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory this test binary was built into.
pub fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    // target/debug/deps/<test> → target
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// `true` if `tool` is on PATH; otherwise prints a loud SKIP (or panics under
/// `NODEIMG_REQUIRE_TOOLS=1`) and returns `false`.
pub fn have_tool(tool: &str) -> bool {
    if which(tool).is_some() {
        return true;
    }
    skip_or_fail(
        "NODEIMG_REQUIRE_TOOLS",
        &format!("`{tool}` is not installed (scripts/setup.sh installs it)"),
    );
    false
}

/// `true` when running as root; otherwise a loud skip (or a failure under `NODEIMG_REQUIRE_ROOT=1`).
pub fn have_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip_or_fail("NODEIMG_REQUIRE_ROOT", "this test needs root");
    false
}

/// `true` if `path` exists; otherwise a loud SKIP naming `hint` (or a failure under
/// `NODEIMG_REQUIRE_TOOLS=1`).
pub fn have_file(path: &Path, hint: &str) -> bool {
    if path.exists() {
        return true;
    }
    skip_or_fail(
        "NODEIMG_REQUIRE_TOOLS",
        &format!("{} is missing ({hint})", path.display()),
    );
    false
}

fn skip_or_fail(var: &str, why: &str) {
    if std::env::var(var).is_ok_and(|v| v == "1") {
        panic!("{why} and {var}=1");
    }
    eprintln!("\n!!!!! SKIP: {why} !!!!!\n");
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The nodeimg binary (built once per test process with `cargo build -p builder`).
pub fn nodeimg() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "builder", "--bin", "nodeimg"])
            .current_dir(repo())
            .status()
            .expect("cargo build");
        assert!(st.success(), "building nodeimg failed");
        target_dir().join("debug/nodeimg")
    })
}

/// The busybox fixture rootfs tar made by scripts/make-fixture.sh, if present.
pub fn fixture_tar() -> Option<PathBuf> {
    let t = std::env::var_os("NODEIMG_FIXTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/fixture/rootfs.tar"));
    if t.is_file() {
        return Some(t);
    }
    skip_or_fail(
        "NODEIMG_REQUIRE_TOOLS",
        &format!(
            "fixture {} missing (run scripts/make-fixture.sh)",
            t.display()
        ),
    );
    None
}

/// The Debian systemd-stub `version` (252, 254, 257) that scripts/fetch-stubs.sh puts in
/// `.cache/stubs/<version>/`, if present (else a loud skip, or a failure under
/// `NODEIMG_REQUIRE_TOOLS=1`).
pub fn stub(version: u32) -> Option<PathBuf> {
    let p = repo().join(format!(".cache/stubs/{version}/linuxx64.efi.stub"));
    if p.is_file() {
        return Some(p);
    }
    let why = format!("{} missing (run scripts/fetch-stubs.sh)", p.display());
    skip_or_fail("NODEIMG_REQUIRE_TOOLS", &why);
    None
}

/// Writes an image.toml for the fixture into `dir` with `extra` TOML appended to `[kernel]`-less
/// defaults, and returns its path.
pub fn fixture_config(dir: &Path, tar: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "[image]\nname = \"fixture\"\nversion = \"1\"\nsource-date-epoch = 1700000000\n\n[rootfs]\ntar = \"{}\"\n\n[kernel]\ncmdline = [\"console=ttyS0\", \"panic=-1\"]\n{extra}",
        tar.display()
    );
    let p = dir.join("image.toml");
    std::fs::write(&p, text).expect("write image.toml");
    p
}

/// The files every build writes into its output directory (no extra formats, no bundle).
pub const BUILD_OUTPUTS: [&str; 5] = [
    "disk.raw",
    "uki.efi",
    "manifest.json",
    "sbom.cdx.json",
    "SHA256SUMS",
];

/// Builds the fixture `tar` with `extra` config (written as `cfg_dir/image.toml`) into `out`;
/// panics with nodeimg's output, naming `what`, if the build fails. Returns `out`.
pub fn build_fixture(cfg_dir: &Path, tar: &Path, extra: &str, out: PathBuf, what: &str) -> PathBuf {
    let cfg = fixture_config(cfg_dir, tar, extra);
    assert_ok(
        &run_nodeimg(&["build", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()]),
        what,
    );
    out
}

/// Runs `nodeimg ARGS` (with its embedded nodeimg-init).
pub fn run_nodeimg(args: &[&str]) -> Output {
    Command::new(nodeimg())
        .args(args)
        .env_remove("NODEIMG_INIT")
        .output()
        .expect("run nodeimg")
}

/// Panics with stdout/stderr unless `out` succeeded.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a host tool; panics with its output on failure.
pub fn run_tool(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    assert_ok(&out, &format!("{cmd:?}"));
    out
}

/// Copies `len` bytes at `offset` of `from` into a new file `to`.
pub fn extract(from: &Path, offset: u64, len: u64, to: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(from).expect("open");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let mut out = std::fs::File::create(to).expect("create");
    std::io::copy(&mut f.take(len), &mut out).expect("copy");
}

/// The parsed manifest.json of a build output dir.
pub fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest.json"))
        .expect("manifest json")
}

/// `nodeimg boot DISK --accel tcg --timeout SECS --console-log LOG --expect …`; returns
/// (exit status ok, console log). On failure the console and stderr are printed.
pub fn boot_expect(disk: &Path, log: &Path, timeout_s: u32, expect: &[&str]) -> (bool, String) {
    boot_expect_with(disk, log, timeout_s, expect, &[])
}

/// [`boot_expect`] with extra `nodeimg boot` arguments (e.g. `--tpm --manifest M`).
pub fn boot_expect_with(
    disk: &Path,
    log: &Path,
    timeout_s: u32,
    expect: &[&str],
    extra: &[&str],
) -> (bool, String) {
    let mut args = vec![
        "boot".to_string(),
        disk.display().to_string(),
        "--accel".into(),
        "tcg".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([
        "--timeout".into(),
        timeout_s.to_string(),
        "--console-log".into(),
        log.display().to_string(),
    ]);
    for e in expect {
        args.extend(["--expect".to_string(), e.to_string()]);
    }
    let out = run_nodeimg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let console = std::fs::read_to_string(log).unwrap_or_default();
    if !out.status.success() {
        eprintln!(
            "--- console ---\n{console}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), console)
}

/// Deterministic pseudo-random bytes (xorshift), for test payloads.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// The unprivileged user (with `/etc/subuid` and `/etc/subgid` ranges) that scripts/setup.sh
/// creates for rootless tests, as (uid, gid, home); `None` with a loud SKIP (or a failure under
/// `NODEIMG_REQUIRE_TOOLS=1`) if it is missing.
pub fn unprivileged_user() -> Option<(u32, u32, PathBuf)> {
    const USER: &str = "nodeimgci";
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[0] == USER);
    let has_range = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{USER}:")))
    };
    match entry {
        Some(f) if has_range("/etc/subuid") && has_range("/etc/subgid") => Some((
            f[2].parse().expect("uid in /etc/passwd"),
            f[3].parse().expect("gid in /etc/passwd"),
            PathBuf::from(f[5]),
        )),
        _ => {
            skip_or_fail(
                "NODEIMG_REQUIRE_TOOLS",
                &format!("user {USER} with subuid/subgid ranges is missing (scripts/setup.sh creates it)"),
            );
            None
        }
    }
}

/// `true` if python3 can import every module in `modules`; otherwise a loud SKIP naming them
/// (or a failure under `NODEIMG_REQUIRE_TOOLS=1`).
pub fn have_python_modules(modules: &[&str]) -> bool {
    let ok = Command::new("python3")
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip_or_fail(
            "NODEIMG_REQUIRE_TOOLS",
            &format!("python3 modules {modules:?} are missing (scripts/setup.sh installs them)"),
        );
    }
    ok
}

/// Validates `sbom` with CycloneDX's own library (`tests/sbom/check.py`) and returns what it
/// lists, one tab-separated line per component (see the script); panics if it does not validate.
pub fn sbom_components(sbom: &Path) -> Vec<String> {
    let out = run_tool(
        Command::new("python3")
            .arg(repo().join("tests/sbom/check.py"))
            .arg(sbom),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// What `dpkg-query -W` lists as installed (`ii`) in the dpkg database `admindir`, in the
/// first six columns of [`sbom_components`]: `pkg NAME VERSION ARCH SOURCE SOURCE_VERSION`.
pub fn dpkg_installed(admindir: &Path) -> Vec<String> {
    let out = run_tool(Command::new("dpkg-query").arg(format!("--admindir={}", admindir.display())).args([
        "-W",
        "-f",
        "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n",
    ]));
    let mut v: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("ii \t"))
        .map(|l| format!("pkg\t{l}"))
        .collect();
    v.sort();
    v
}

/// The first six columns of the package lines of [`sbom_components`], sorted.
pub fn sbom_packages(components: &[String]) -> Vec<String> {
    let mut v: Vec<String> = components
        .iter()
        .filter(|l| l.starts_with("pkg\t"))
        .map(|l| l.split('\t').take(6).collect::<Vec<_>>().join("\t"))
        .collect();
    v.sort();
    v
}

/// A TDX CC event log as TDVF writes it: the Spec ID event (index 1, SHA-384 only), then one
/// `TCG_PCR_EVENT2` per `(CC MR index, event type, SHA-384 digest)`, each with 4 bytes of data.
pub fn ccel_log(events: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let mut spec = b"Spec ID Event03\0".to_vec();
    spec.extend(0u32.to_le_bytes()); // platform class
    spec.extend([0, 2, 0, 2]); // version 2.0, errata 0, uintnSize 2 (u64)
    spec.extend(1u32.to_le_bytes());
    spec.extend(0x000cu16.to_le_bytes());
    spec.extend(48u16.to_le_bytes());
    spec.push(0);
    let mut log = Vec::new();
    log.extend(1u32.to_le_bytes());
    log.extend(3u32.to_le_bytes()); // EV_NO_ACTION
    log.extend([0u8; 20]);
    log.extend((spec.len() as u32).to_le_bytes());
    log.extend(&spec);
    for (mr, t, digest) in events {
        log.extend(mr.to_le_bytes());
        log.extend(t.to_le_bytes());
        log.extend(1u32.to_le_bytes());
        log.extend(0x000cu16.to_le_bytes());
        log.extend(digest);
        log.extend(4u32.to_le_bytes());
        log.extend(b"data");
    }
    log
}
