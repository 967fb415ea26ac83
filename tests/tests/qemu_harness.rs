//! The QEMU boot runner (`builder::qemu`) on tiny disks that hold only the fixture kernel,
//! without the rest of the build pipeline.
//!
//! Needs `scripts/make-fixture.sh` to have run (it writes `.cache/fixture/`; override with
//! `NODEIMG_FIXTURE_DIR`), plus qemu-system-x86_64, OVMF, sfdisk, mtools and tar; swtpm for the
//! TPM test. Missing pieces skip loudly, or fail with `NODEIMG_REQUIRE_TOOLS=1`.
//!
//! Two disks, each a GPT with one FAT32 ESP:
//! * "stub": the kernel as `\EFI\BOOT\BOOTX64.EFI`. Firmware starts it, but without a command
//!   line the kernel writes only to the screen, so the serial console goes quiet after
//!   `BdsDxe: starting …` (and the kernel, unable to mount a root, waits forever).
//! * "shell": the kernel as `\vmlinuz.efi` and a `startup.nsh` the UEFI shell runs after its
//!   5 s countdown: it writes a file to the ESP (which `snapshot=on` must keep off the image),
//!   then starts `vmlinuz.efi console=ttyS0 panic=-1`. The kernel logs to serial, panics
//!   ("VFS: Unable to mount root fs"), reboots at once, and `-no-reboot` ends QEMU.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use builder::qemu::{self, Accel, BootSpec, Outcome};
use sha2::{Digest, Sha256};

/// Whole-test limit enforced by a watchdog, above every boot timeout used here.
const TEST_LIMIT: Duration = Duration::from_secs(420);
/// Boot timeout for runs that must finish (TCG on 2 shared cores is slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
/// ESP partition: starts at 1 MiB, 46 MiB long.
const ESP_START_LBA: u64 = 2048;
const ESP_SECTORS: u64 = 46 * 2048;
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX_FS_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// One TCG boot at a time, so boots do not starve each other of the two cores.
static BOOT_LOCK: Mutex<()> = Mutex::new(());

// ---- skip / require helpers ---------------------------------------------------------------

fn required() -> bool {
    std::env::var("NODEIMG_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// True when `ok`; otherwise skips loudly (false) or, under NODEIMG_REQUIRE_TOOLS=1, fails.
fn have(what: &str, ok: bool) -> bool {
    if !ok {
        assert!(!required(), "{what} is missing and NODEIMG_REQUIRE_TOOLS=1");
        eprintln!("SKIP: {what} is missing");
    }
    ok
}

fn have_tools(tools: &[&str]) -> bool {
    tools.iter().all(|t| {
        have(
            &format!("host tool `{t}`"),
            builder::tool::which(t).is_some(),
        )
    })
}

/// The fixture made by scripts/make-fixture.sh: (rootfs.tar, kernel release).
fn fixture() -> Option<(PathBuf, String)> {
    let dir = std::env::var_os("NODEIMG_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/fixture"));
    let tar = dir.join("rootfs.tar");
    let release = fs::read_to_string(dir.join("kernel-release")).ok();
    let ok = tar.is_file() && release.is_some();
    if !have(
        &format!(
            "fixture {} (run scripts/make-fixture.sh as root)",
            tar.display()
        ),
        ok,
    ) {
        return None;
    }
    Some((tar, release?.trim().to_string()))
}

/// Everything a boot test needs, or None (skipped).
fn prerequisites() -> Option<(PathBuf, String)> {
    let firmware = Path::new(qemu::DEFAULT_OVMF_CODE).is_file()
        && Path::new(qemu::DEFAULT_OVMF_VARS).is_file();
    let ok = have_tools(&[qemu::QEMU, "sfdisk", "mformat", "mmd", "mcopy", "tar"])
        && have(
            &format!("OVMF firmware {}", qemu::DEFAULT_OVMF_CODE),
            firmware,
        );
    if ok {
        fixture()
    } else {
        None
    }
}

// ---- watchdog ---------------------------------------------------------------------------

/// Exits the whole test process if the test has not finished within `limit`; the runner's
/// children die with it (they are spawned with PR_SET_PDEATHSIG).
struct Watchdog {
    _cancel_on_drop: mpsc::Sender<()>,
}

fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!(
                "FAIL: {name} exceeded its hard limit of {limit:?}; aborting the test process"
            );
            std::process::exit(101);
        }
    });
    Watchdog {
        _cancel_on_drop: tx,
    }
}

// ---- disks ------------------------------------------------------------------------------

fn run(cmd: &mut Command) {
    builder::tool::run(cmd).unwrap_or_else(|e| panic!("{e:#}"));
}

fn extract_kernel(tar: &Path, release: &str, dir: &Path) -> PathBuf {
    let out = dir.join("vmlinuz.efi");
    let file = File::create(&out).unwrap();
    let member = format!("./boot/vmlinuz-{release}");
    let status = Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg(&member)
        .stdout(file)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "extracting {member} from {}",
        tar.display()
    );
    out
}

/// A GPT disk with one FAT32 ESP holding `files` (ESP path like `::/EFI/BOOT/BOOTX64.EFI`).
fn esp_disk(dir: &Path, dirs: &[&str], files: &[(&Path, &str)]) -> PathBuf {
    gpt_disk(dir, dirs, files, None)
}

/// A GPT disk: a FAT32 ESP holding `files`, then optionally `second` (an image file) as
/// partition 2 (Linux filesystem type).
fn gpt_disk(dir: &Path, dirs: &[&str], files: &[(&Path, &str)], second: Option<&Path>) -> PathBuf {
    let esp = dir.join("esp.img");
    File::create(&esp)
        .unwrap()
        .set_len(ESP_SECTORS * 512)
        .unwrap();
    let img = esp.to_str().unwrap();
    run(Command::new("mformat").args(["-i", img, "-F", "-v", "NODEIMGTEST", "::"]));
    for d in dirs {
        run(Command::new("mmd").args(["-i", img, d]));
    }
    for (src, dst) in files {
        run(Command::new("mcopy").args(["-i", img]).arg(src).arg(dst));
    }
    let mut parts = vec![(esp.clone(), ESP_TYPE)];
    parts.extend(second.map(|p| (p.to_path_buf(), LINUX_FS_TYPE)));
    let disk = write_gpt(dir, &parts);
    fs::remove_file(&esp).unwrap();
    disk
}

/// Writes `disk.raw` with the partition images one after another from LBA 2048, each
/// rounded up to 1 MiB, plus 1 MiB at the end for the backup GPT.
fn write_gpt(dir: &Path, parts: &[(PathBuf, &str)]) -> PathBuf {
    const MIB_SECTORS: u64 = 2048;
    let mut script = String::from("label: gpt\n");
    let mut lba = ESP_START_LBA;
    let mut placed = Vec::new();
    for (image, type_guid) in parts {
        let sectors = fs::metadata(image)
            .unwrap()
            .len()
            .div_ceil(512 * MIB_SECTORS)
            * MIB_SECTORS;
        script.push_str(&format!("start={lba}, size={sectors}, type={type_guid}\n"));
        placed.push((image, lba));
        lba += sectors;
    }
    let disk = dir.join("disk.raw");
    File::create(&disk)
        .unwrap()
        .set_len((lba + MIB_SECTORS) * 512)
        .unwrap();
    let mut sfdisk = Command::new("sfdisk")
        .args(["-q"])
        .arg(&disk)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        sfdisk.wait().unwrap().success(),
        "sfdisk failed on:\n{script}"
    );
    let mut f = fs::OpenOptions::new().write(true).open(&disk).unwrap();
    for (image, lba) in placed {
        f.seek(SeekFrom::Start(lba * 512)).unwrap();
        f.write_all(&fs::read(image).unwrap()).unwrap();
    }
    disk
}

/// The kernel as \EFI\BOOT\BOOTX64.EFI (no command line).
fn stub_disk(dir: &Path, tar: &Path, release: &str) -> PathBuf {
    let kernel = extract_kernel(tar, release, dir);
    esp_disk(
        dir,
        &["::/EFI", "::/EFI/BOOT"],
        &[(&kernel, "::/EFI/BOOT/BOOTX64.EFI")],
    )
}

/// The kernel started from startup.nsh with `console=ttyS0 panic=-1`, after the shell
/// writes `\shell-wrote.txt`.
fn shell_disk(dir: &Path, tar: &Path, release: &str) -> PathBuf {
    let kernel = extract_kernel(tar, release, dir);
    let nsh = dir.join("startup.nsh");
    fs::write(
        &nsh,
        "fs0:\r\necho written > shell-wrote.txt\r\n\\vmlinuz.efi console=ttyS0 panic=-1\r\n",
    )
    .unwrap();
    esp_disk(
        dir,
        &[],
        &[(&kernel, "::/vmlinuz.efi"), (&nsh, "::/startup.nsh")],
    )
}

// ---- checks -----------------------------------------------------------------------------

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

/// Processes whose command line mentions `needle` (QEMU names the disk and the VARS copy,
/// swtpm its state directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// After a boot: no process left that uses the test's files, and the work dir is empty.
fn assert_cleaned_up(dir: &Path, work: &Path) {
    let left = processes_mentioning(dir.to_str().unwrap());
    assert!(left.is_empty(), "processes left behind: {left:#?}");
    let entries: Vec<_> = fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        entries.is_empty(),
        "temporary files left behind: {entries:?}"
    );
}

fn spec(disk: &Path, work: &Path, timeout: Duration) -> BootSpec {
    BootSpec {
        accel: Accel::Tcg,
        timeout,
        work_dir: Some(work.to_path_buf()),
        ..BootSpec::new(disk)
    }
}

/// A temp dir for the disk and, inside it, the runner's work dir.
fn dirs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("nodeimg-qemu-test-")
        .tempdir()
        .unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    (dir, work)
}

// ---- tests ------------------------------------------------------------------------------

/// Full TCG boot to the kernel: serial lines from the kernel, the panic, and QEMU ending on
/// the reboot. Also measures how long each phase takes and checks the disk is untouched.
#[test]
fn tcg_boot_reaches_the_kernel_and_ends() {
    let _w = watchdog("tcg_boot_reaches_the_kernel_and_ends", TEST_LIMIT);
    let Some((tar, release)) = prerequisites() else {
        return;
    };
    let (dir, work) = dirs();
    let disk = shell_disk(dir.path(), &tar, &release);
    let before = sha256(&disk);
    let console = dir.path().join("console.log");
    let spec = BootSpec {
        console_log: Some(console.clone()),
        ..spec(&disk, &work, BOOT_TIMEOUT)
    };

    let marks = ["UEFI Interactive Shell", "Linux version", "Kernel panic"];
    let mut at: Vec<Option<Duration>> = vec![None; marks.len()];
    let _lock = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let result = qemu::boot_streaming(&spec, &mut |line| {
        for (slot, mark) in at.iter_mut().zip(marks) {
            if slot.is_none() && line.contains(mark) {
                *slot = Some(start.elapsed());
            }
        }
        ControlFlow::Continue(())
    })
    .unwrap();

    eprintln!(
        "TIMING (TCG, {} vCPUs): total {:.1} s",
        spec.cpus,
        result.duration.as_secs_f64()
    );
    for (mark, t) in marks.iter().zip(&at) {
        eprintln!(
            "TIMING   first {mark:?} after {:?}",
            t.map(|d| format!("{:.1} s", d.as_secs_f64()))
        );
    }
    let tail = qemu::tail_lines(&result.log, 15).join("\n");
    assert_eq!(result.outcome, Outcome::PoweredOff, "console tail:\n{tail}");
    assert_eq!(result.accel, Accel::Tcg);
    assert!(
        result.log.contains(&format!("Linux version {release}")),
        "no kernel banner:\n{tail}"
    );
    assert!(
        result
            .log
            .contains("Command line: \\vmlinuz.efi console=ttyS0 panic=-1"),
        "{tail}"
    );
    assert!(
        result.log.contains("VFS: Unable to mount root fs"),
        "{tail}"
    );
    assert_eq!(
        fs::read_to_string(&console).unwrap(),
        result.log,
        "console log file differs from the result"
    );
    assert_eq!(
        sha256(&disk),
        before,
        "the disk image was modified (snapshot=on missing?)"
    );
    assert_eq!(result.pcrs().unwrap(), None);
    assert_cleaned_up(dir.path(), &work);
}

/// The firmware starts \EFI\BOOT\BOOTX64.EFI (the kernel), and a stop text ends the run early.
#[test]
fn firmware_starts_bootx64_and_stop_text_ends_early() {
    let _w = watchdog(
        "firmware_starts_bootx64_and_stop_text_ends_early",
        TEST_LIMIT,
    );
    let Some((tar, release)) = prerequisites() else {
        return;
    };
    let (dir, work) = dirs();
    let disk = stub_disk(dir.path(), &tar, &release);
    let stop = "BdsDxe: starting Boot".to_string();
    let spec = BootSpec {
        stop_on: vec![stop.clone()],
        ..spec(&disk, &work, BOOT_TIMEOUT)
    };
    let _lock = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let result = qemu::boot(&spec).unwrap();
    eprintln!(
        "TIMING (TCG): OVMF to `{stop}` in {:.1} s",
        result.duration.as_secs_f64()
    );
    let tail = qemu::tail_lines(&result.log, 10).join("\n");
    assert!(
        matches!(&result.outcome, Outcome::Stopped { reason } if reason.contains(&stop)),
        "{:?}\n{tail}",
        result.outcome
    );
    assert!(
        result.log.contains("UEFI Misc Device"),
        "firmware did not boot the disk's removable-media path:\n{tail}"
    );
    assert_cleaned_up(dir.path(), &work);
}

/// A timeout shorter than the boot kills QEMU promptly and reports Timeout with the log so far.
#[test]
fn short_timeout_kills_qemu_promptly() {
    let _w = watchdog(
        "short_timeout_kills_qemu_promptly",
        Duration::from_secs(120),
    );
    let Some((tar, release)) = prerequisites() else {
        return;
    };
    let (dir, work) = dirs();
    let disk = stub_disk(dir.path(), &tar, &release);
    let timeout = Duration::from_secs(3);
    let start = Instant::now();
    let result = qemu::boot(&spec(&disk, &work, timeout)).unwrap();
    let took = start.elapsed();
    assert_eq!(result.outcome, Outcome::Timeout, "log:\n{}", result.log);
    assert!(
        took < timeout + Duration::from_secs(5),
        "boot() returned after {took:?}"
    );
    assert!(result.duration >= timeout, "{:?}", result.duration);
    assert_cleaned_up(dir.path(), &work);
}

/// QEMU failing to start the machine (a firmware file of the wrong size) is a QemuError
/// carrying QEMU's message, not a hang.
#[test]
fn qemu_failure_is_reported() {
    let _w = watchdog("qemu_failure_is_reported", Duration::from_secs(120));
    let Some((tar, release)) = prerequisites() else {
        return;
    };
    let (dir, work) = dirs();
    let disk = stub_disk(dir.path(), &tar, &release);
    let bad_code = dir.path().join("bad-code.fd");
    fs::write(&bad_code, [0u8; 1000]).unwrap();
    let spec = BootSpec {
        ovmf_code: bad_code,
        ..spec(&disk, &work, BOOT_TIMEOUT)
    };
    let result = qemu::boot(&spec).unwrap();
    let Outcome::QemuError { message } = &result.outcome else {
        panic!("expected a QEMU error, got {:?}", result.outcome)
    };
    assert!(message.contains(qemu::QEMU), "{message}");
    assert!(
        result.duration < Duration::from_secs(30),
        "{:?}",
        result.duration
    );
    assert_cleaned_up(dir.path(), &work);
}

/// With --tpm the firmware finds a TPM (it hands the kernel a TPM event log) and swtpm is
/// gone afterwards.
#[test]
fn tpm_is_visible_to_firmware_and_kernel() {
    let _w = watchdog("tpm_is_visible_to_firmware_and_kernel", TEST_LIMIT);
    let Some((tar, release)) = prerequisites() else {
        return;
    };
    if !have_tools(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let (dir, work) = dirs();
    let disk = shell_disk(dir.path(), &tar, &release);
    let spec = BootSpec {
        tpm: true,
        stop_on: vec!["tpm_crb".into()],
        ..spec(&disk, &work, BOOT_TIMEOUT)
    };
    let _lock = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let result = qemu::boot(&spec).unwrap();
    let tail = qemu::tail_lines(&result.log, 15).join("\n");
    assert!(
        matches!(result.outcome, Outcome::Stopped { .. }),
        "{:?}\n{tail}",
        result.outcome
    );
    assert!(
        result.log.contains("TPMEventLog="),
        "firmware passed no TPM event log:\n{tail}"
    );
    assert_cleaned_up(dir.path(), &work);
}

/// PID 1 of the throw-away initramfs in `fixture_init_runs_from_a_read_only_erofs_root`: loads
/// the fixture's modules with modprobe (so its modules.dep must be right), mounts partition 2
/// (erofs) read-only and switch_roots into the fixture's /sbin/init.
const TEST_INITRAMFS_INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin
fail() { echo "NODEIMG-TEST-INIT-FAILED: $*"; busybox poweroff -f; busybox sleep 60; }
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs devtmpfs /dev
for m in virtio_pci virtio_blk erofs; do busybox modprobe "$m" || fail "modprobe $m"; done
i=0
while [ ! -b /dev/vda2 ]; do
  i=$((i + 1)); [ "$i" -gt 30 ] && fail "no /dev/vda2"; busybox sleep 1
done
busybox mkdir -p /newroot
busybox mount -t erofs -o ro /dev/vda2 /newroot || fail "mounting /dev/vda2"
busybox umount /proc /sys
busybox mount -o move /dev /newroot/dev || fail "moving /dev"
exec busybox switch_root /newroot /sbin/init
"#;

/// The fixture's /sbin/init, run from a read-only erofs root made of the fixture tar, checked
/// through the `nodeimg boot` command itself (in process): it must report the marker lines,
/// a read-only erofs `/`, and power off.
#[test]
fn fixture_init_runs_from_a_read_only_erofs_root() {
    let _w = watchdog("fixture_init_runs_from_a_read_only_erofs_root", TEST_LIMIT);
    let Some((tar, release)) = prerequisites() else {
        return;
    };
    if !have_tools(&["mkfs.erofs", "cpio", "sh"]) {
        return;
    }
    let (dir, work) = dirs();
    let d = dir.path();
    let kernel = extract_kernel(&tar, &release, d);
    // Root: the whole fixture as erofs. Initramfs: the fixture minus /boot, plus /init.
    for (sub, exclude) in [("tree", None), ("initramfs", Some("--exclude=./boot"))] {
        fs::create_dir(d.join(sub)).unwrap();
        run(Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(d.join(sub))
            .args(exclude));
    }
    run(Command::new("mkfs.erofs")
        .arg(d.join("root.erofs"))
        .arg(d.join("tree")));
    let init = d.join("initramfs/init");
    fs::write(&init, TEST_INITRAMFS_INIT).unwrap();
    fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    run(Command::new("sh")
        .args([
            "-c",
            "cd \"$1\" && find . | cpio -o -H newc --quiet > \"$2\"",
            "sh",
        ])
        .arg(d.join("initramfs"))
        .arg(d.join("initrd.cpio")));
    let nsh = d.join("startup.nsh");
    let cmdline = "console=ttyS0 panic=-1 initrd=\\initrd.cpio";
    fs::write(&nsh, format!("fs0:\r\n\\vmlinuz.efi {cmdline}\r\n")).unwrap();
    let files = [
        (kernel.as_path(), "::/vmlinuz.efi"),
        (&d.join("initrd.cpio"), "::/initrd.cpio"),
        (&nsh, "::/startup.nsh"),
    ];
    let disk = gpt_disk(d, &[], &files, Some(&d.join("root.erofs")));
    let console = d.join("console.log");

    let argv = [
        "nodeimg",
        "boot",
        disk.to_str().unwrap(),
        "--accel",
        "tcg",
        "--timeout",
        "240",
        "--expect",
        "NODEIMG-FIXTURE-BOOTED",
        "--expect",
        "NODEIMG-FIXTURE-RO-OK",
        "--expect",
        "NODEIMG-FIXTURE-POWEROFF",
        "--fail-on",
        "NODEIMG-TEST-INIT-FAILED",
        "--fail-on",
        "NODEIMG-FIXTURE-WRITABLE",
        "--console-log",
        console.to_str().unwrap(),
    ];
    let cli = <builder::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
    let _lock = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let result = builder::cli::run(cli);
    let log = fs::read_to_string(&console).unwrap_or_default();
    assert!(
        result.is_ok(),
        "nodeimg boot failed: {:#}",
        result.unwrap_err()
    );
    let root_line = log
        .lines()
        .find(|l| l.starts_with("root="))
        .unwrap_or_default();
    assert!(
        root_line.starts_with("root=/dev/vda2 / erofs ro"),
        "{root_line:?}\n{log}"
    );
    assert_cleaned_up(d, &work);
}
