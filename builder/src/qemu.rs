//! Boots a disk image under QEMU + OVMF (optionally with a software TPM) and captures the
//! serial console: the runner behind `nodeimg boot` and the boot tests.
//!
//! The machine: q35, 1 GiB, 2 vCPUs, no default devices, the disk as virtio-blk with
//! `snapshot=on` (the image file is never written), OVMF without Secure Boot using a private
//! copy of the VARS template, the serial port on QEMU's stdout, and `-no-reboot` so a guest
//! reboot ends the run. A hard deadline kills QEMU; QEMU, swtpm and the temporary directory
//! are cleaned up however the run ends.

pub mod attest;
mod console;
pub mod eventlog;
mod pcrs;
pub mod quote;
mod supervise;
mod tpm;

use std::ffi::OsString;
use std::fs::{self, File};
use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use console::tail_lines;
pub use pcrs::{ObservedPcrs, PCRS_MARKER};
use supervise::{ChildGuard, Ended, Watch};

/// Debian's OVMF firmware code without Secure Boot (package `ovmf`).
pub const DEFAULT_OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// Debian's Secure-Boot-capable OVMF build (needs SMM and a secure pflash).
pub const DEFAULT_OVMF_CODE_SECBOOT: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// Debian's empty OVMF variable store matching [`DEFAULT_OVMF_CODE`]; only ever copied.
pub const DEFAULT_OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The QEMU binary looked up on PATH.
pub const QEMU: &str = "qemu-system-x86_64";

/// QEMU's stderr message when KVM cannot execute the guest (QEMU then sits paused).
const KVM_FAULT: &str = "KVM internal error";
/// QEMU stderr texts after which the guest can make no progress.
const FATAL_STDERR: &[&str] = &[KVM_FAULT];
/// Whether `disk` starts with the qcow2 magic.
fn is_qcow2(disk: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(disk)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"QFI\xfb"
}

/// QEMU stderr lines quoted when QEMU exits with an error.
const STDERR_QUOTED: usize = 5;
/// How long the KVM probe may take to reach OVMF's boot manager.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// The console text that shows OVMF ran to its boot manager.
const OVMF_BDS_MARKER: &str = "BdsDxe";

/// How QEMU executes the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when /dev/kvm is usable and a probe boot of OVMF works, else TCG.
    #[default]
    Auto,
    /// Hardware virtualization (fails when KVM faults, e.g. under some nested setups).
    Kvm,
    /// Software emulation: slow but works everywhere.
    Tcg,
}

impl Accel {
    /// The name QEMU's `-accel` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One boot: what to run and when to stop.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// Raw disk image; opened with `snapshot=on`, so it is never modified.
    pub disk: PathBuf,
    /// Hard limit from QEMU's start; QEMU is killed when it passes.
    pub timeout: Duration,
    /// Accelerator; [`Accel::Auto`] probes KVM.
    pub accel: Accel,
    /// Attach a swtpm TPM 2.0 (CRB interface) with SHA-256 and SHA-384 banks.
    pub tpm: bool,
    /// OVMF code (read-only pflash).
    pub ovmf_code: PathBuf,
    /// OVMF variable store template; the guest gets a private writable copy.
    pub ovmf_vars: PathBuf,
    /// Run the firmware with SMM and a secure variable flash, as the Secure Boot OVMF build
    /// needs (without them it refuses to start or cannot protect its variables).
    pub secure_boot: bool,
    /// Stop as soon as the console shows any of these texts.
    pub stop_on: Vec<String>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Also write the console, line by line as it arrives, to this file.
    pub console_log: Option<PathBuf>,
    /// Where the temporary directory (VARS copy, TPM state) goes; default the system's.
    pub work_dir: Option<PathBuf>,
    /// A second, read-only raw disk (the quote request of `nodeimg boot --quote`).
    pub extra_disk: Option<PathBuf>,
}

impl BootSpec {
    /// Defaults: 300 s, auto accel, no TPM, Debian's OVMF, 1024 MiB, 2 vCPUs.
    pub fn new(disk: impl Into<PathBuf>) -> Self {
        Self {
            disk: disk.into(),
            timeout: Duration::from_secs(300),
            accel: Accel::Auto,
            tpm: false,
            ovmf_code: DEFAULT_OVMF_CODE.into(),
            ovmf_vars: DEFAULT_OVMF_VARS.into(),
            secure_boot: false,
            stop_on: Vec::new(),
            memory_mib: 1024,
            cpus: 2,
            console_log: None,
            work_dir: None,
            extra_disk: None,
        }
    }
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// QEMU exited with status 0: the guest powered off (or rebooted, which `-no-reboot`
    /// turns into an exit).
    PoweredOff,
    /// A stop text or the caller's line callback ended the run early; says which.
    Stopped { reason: String },
    /// The timeout passed and QEMU was killed.
    Timeout,
    /// QEMU failed: non-zero exit, a signal, or a fatal error such as a KVM fault.
    QemuError { message: String },
}

impl Outcome {
    /// A kebab-case name for JSON and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::PoweredOff => "powered-off",
            Outcome::Stopped { .. } => "stopped",
            Outcome::Timeout => "timeout",
            Outcome::QemuError { .. } => "qemu-error",
        }
    }
}

/// What a boot produced.
#[derive(Debug, Clone)]
pub struct BootResult {
    /// The whole serial console, one line per line, escape sequences removed.
    pub log: String,
    /// How the run ended.
    pub outcome: Outcome,
    /// From QEMU's start to its end.
    pub duration: Duration,
    /// The accelerator actually used (never `Auto`).
    pub accel: Accel,
}

impl BootResult {
    /// The PCR values nodeimg-init reported on the console, if it printed them.
    pub fn pcrs(&self) -> Result<Option<ObservedPcrs>> {
        ObservedPcrs::from_log(&self.log)
    }

    /// The firmware event log nodeimg-init sent on the console, if it sent one.
    pub fn event_log(&self) -> Result<Option<eventlog::GuestEventLog>> {
        eventlog::from_console(&self.log)
    }
}

/// Boots `spec.disk` and returns the console log and how the run ended. Errors are setup
/// failures (missing QEMU, firmware or disk; swtpm not starting); a guest that fails,
/// hangs or crashes QEMU is an [`Outcome`], with the log.
pub fn boot(spec: &BootSpec) -> Result<BootResult> {
    boot_streaming(spec, &mut |_| ControlFlow::Continue(()))
}

/// Like [`boot`], and calls `on_line` with every console line as it arrives;
/// `ControlFlow::Break(reason)` stops the run early with [`Outcome::Stopped`].
pub fn boot_streaming(
    spec: &BootSpec,
    on_line: &mut dyn FnMut(&str) -> ControlFlow<String>,
) -> Result<BootResult> {
    let qemu = check_inputs(spec)?;
    let accel = resolve_accel(spec, &qemu)?;
    let tmp = work_tempdir(spec.work_dir.as_deref())?;
    let vars = copy_vars(&spec.ovmf_vars, tmp.path())?;
    let swtpm = if spec.tpm {
        Some(tpm::Swtpm::start(&tmp.path().join("tpm"))?)
    } else {
        None
    };
    let log_file = match &spec.console_log {
        Some(p) => Some(
            File::create(p).with_context(|| format!("creating the console log {}", p.display()))?,
        ),
        None => None,
    };
    let machine = Machine {
        code: &spec.ovmf_code,
        vars: &vars,
        accel,
        memory_mib: spec.memory_mib,
        cpus: spec.cpus,
        disk: Some(&spec.disk),
        tpm_socket: swtpm.as_ref().map(|t| t.socket()),
        smm: spec.secure_boot,
        extra_disk: spec.extra_disk.as_deref(),
    };
    tracing::info!(disk = %spec.disk.display(), accel = accel.as_str(), tpm = spec.tpm, "booting");
    let start = Instant::now();
    let mut child = spawn_qemu(&qemu, &machine)?;
    let watch = Watch {
        deadline: start + spec.timeout,
        stop_on: &spec.stop_on,
        fatal_stderr: FATAL_STDERR,
        on_line,
        log_file,
    };
    let run = supervise::supervise(&mut child, watch)?;
    let duration = start.elapsed();
    drop(child);
    drop(swtpm);
    let outcome = outcome(run.ended, &run.stderr);
    tracing::info!(outcome = outcome.kind(), ?duration, "boot ended");
    Ok(BootResult {
        log: run.log,
        outcome,
        duration,
        accel,
    })
}

/// Checks the input files exist and finds QEMU.
fn check_inputs(spec: &BootSpec) -> Result<PathBuf> {
    let hint = "install the `ovmf` package or pass --ovmf-code/--ovmf-vars";
    fs::metadata(&spec.disk)
        .with_context(|| format!("opening disk image {}", spec.disk.display()))?;
    fs::metadata(&spec.ovmf_code)
        .with_context(|| format!("OVMF code {} ({hint})", spec.ovmf_code.display()))?;
    fs::metadata(&spec.ovmf_vars)
        .with_context(|| format!("OVMF vars {} ({hint})", spec.ovmf_vars.display()))?;
    if spec.timeout.is_zero() {
        bail!("the boot timeout must be greater than zero");
    }
    crate::tool::which(QEMU).with_context(|| {
        format!("{QEMU} not found on PATH (install qemu-system-x86; scripts/setup.sh does)")
    })
}

fn work_tempdir(parent: Option<&Path>) -> Result<tempfile::TempDir> {
    let mut b = tempfile::Builder::new();
    b.prefix("nodeimg-boot-");
    match parent {
        Some(p) => b
            .tempdir_in(p)
            .with_context(|| format!("creating a temporary directory in {}", p.display())),
        None => b.tempdir().context("creating a temporary directory"),
    }
}

/// Copies the VARS template to `dir` (mode 0600): the guest writes to its copy only.
fn copy_vars(template: &Path, dir: &Path) -> Result<PathBuf> {
    let copy = dir.join("OVMF_VARS.fd");
    fs::copy(template, &copy).with_context(|| {
        format!(
            "copying OVMF vars {} to {}",
            template.display(),
            copy.display()
        )
    })?;
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} writable", copy.display()))?;
    Ok(copy)
}

fn outcome(ended: Ended, stderr: &[String]) -> Outcome {
    let tail = stderr[stderr.len().saturating_sub(STDERR_QUOTED)..].join("\n");
    match ended {
        Ended::Exited(status) if status.success() => Outcome::PoweredOff,
        Ended::Exited(status) => Outcome::QemuError {
            message: format!("{QEMU} exited ({status}): {tail}"),
        },
        Ended::Stopped(reason) => Outcome::Stopped { reason },
        Ended::Timeout => Outcome::Timeout,
        Ended::Fatal(line) if line.contains(KVM_FAULT) => Outcome::QemuError {
            message: format!(
                "{QEMU}: {line}: KVM cannot run this guest on this host (nested \
                 virtualization?); use --accel tcg"
            ),
        },
        Ended::Fatal(line) => Outcome::QemuError {
            message: format!("{QEMU}: {line}"),
        },
    }
}

/// The accelerator to use: `Auto` becomes KVM only when /dev/kvm opens read-write and a
/// probe boot of OVMF under KVM reaches the boot manager (cached for the process).
fn resolve_accel(spec: &BootSpec, qemu: &Path) -> Result<Accel> {
    if spec.accel != Accel::Auto {
        return Ok(spec.accel);
    }
    static KVM_WORKS: OnceLock<bool> = OnceLock::new();
    if let Some(&works) = KVM_WORKS.get() {
        return Ok(if works { Accel::Kvm } else { Accel::Tcg });
    }
    let works = kvm_device_usable() && probe_kvm(spec, qemu)?;
    let _ = KVM_WORKS.set(works);
    Ok(if works { Accel::Kvm } else { Accel::Tcg })
}

fn kvm_device_usable() -> bool {
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            tracing::info!("/dev/kvm not usable ({e}); using TCG");
            false
        }
    }
}

/// Boots OVMF alone under KVM until its boot manager prints; false on a KVM fault, a QEMU
/// error or a timeout.
fn probe_kvm(spec: &BootSpec, qemu: &Path) -> Result<bool> {
    let tmp = work_tempdir(spec.work_dir.as_deref())?;
    let vars = copy_vars(&spec.ovmf_vars, tmp.path())?;
    let machine = Machine {
        code: &spec.ovmf_code,
        vars: &vars,
        accel: Accel::Kvm,
        memory_mib: 256,
        cpus: 1,
        disk: None,
        tpm_socket: None,
        smm: spec.secure_boot,
        extra_disk: None,
    };
    let mut child = spawn_qemu(qemu, &machine)?;
    let watch = Watch {
        deadline: Instant::now() + KVM_PROBE_TIMEOUT,
        stop_on: &[OVMF_BDS_MARKER.to_string()],
        fatal_stderr: FATAL_STDERR,
        on_line: &mut |_| ControlFlow::Continue(()),
        log_file: None,
    };
    let run = supervise::supervise(&mut child, watch)?;
    let works = matches!(run.ended, Ended::Stopped(_));
    tracing::info!(works, ended = ?run.ended, stderr = ?run.stderr, "KVM probe");
    if !works {
        tracing::warn!("KVM does not work here ({:?}); using TCG (slow)", run.ended);
    }
    Ok(works)
}

/// Everything that shapes the QEMU command line.
#[derive(Debug)]
struct Machine<'a> {
    code: &'a Path,
    vars: &'a Path,
    accel: Accel,
    memory_mib: u32,
    cpus: u32,
    disk: Option<&'a Path>,
    tpm_socket: Option<&'a Path>,
    /// q35 with SMM and a secure pflash (the Secure Boot OVMF build).
    smm: bool,
    /// A read-only raw disk after the boot disk (the quote request).
    extra_disk: Option<&'a Path>,
}

fn spawn_qemu(qemu: &Path, m: &Machine) -> Result<ChildGuard> {
    let mut cmd = Command::new(qemu);
    cmd.args(qemu_args(m))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard::spawn(&mut cmd)
}

/// The QEMU argv (without the program).
fn qemu_args(m: &Machine) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&str]| a.extend(parts.iter().map(OsString::from));
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-machine",
        if m.smm { "q35,smm=on" } else { "q35" },
        "-accel",
        m.accel.as_str(),
    ]);
    if m.smm {
        push(&["-global", "driver=cfi.pflash01,property=secure,value=on"]);
    }
    push(&["-m", &m.memory_mib.to_string(), "-smp", &m.cpus.to_string()]);
    push(&["-display", "none", "-monitor", "none", "-no-reboot"]);
    push(&[
        "-chardev",
        "stdio,id=ser0,signal=off",
        "-serial",
        "chardev:ser0",
    ]);
    a.push("-drive".into());
    a.push(opt_with_path(
        "if=pflash,format=raw,unit=0,readonly=on,file=",
        m.code,
    ));
    a.push("-drive".into());
    a.push(opt_with_path("if=pflash,format=raw,unit=1,file=", m.vars));
    if let Some(disk) = m.disk {
        a.push("-drive".into());
        // disk.qcow2 boots as qcow2 (by its magic); everything else as raw (never probed).
        let prefix = if is_qcow2(disk) {
            "if=none,id=d0,format=qcow2,snapshot=on,file="
        } else {
            "if=none,id=d0,format=raw,snapshot=on,file="
        };
        a.push(opt_with_path(prefix, disk));
        a.extend(["-device", "virtio-blk-pci,drive=d0"].map(OsString::from));
    }
    if let Some(extra) = m.extra_disk {
        a.push("-drive".into());
        a.push(opt_with_path(
            "if=none,id=d1,format=raw,readonly=on,file=",
            extra,
        ));
        a.extend(["-device", "virtio-blk-pci,drive=d1"].map(OsString::from));
    }
    if let Some(sock) = m.tpm_socket {
        a.push("-chardev".into());
        a.push(opt_with_path("socket,id=chrtpm,path=", sock));
        let tpm = [
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-crb,tpmdev=tpm0",
        ];
        a.extend(tpm.map(OsString::from));
    }
    a
}

/// `prefix` followed by `path` with commas doubled, as QEMU's option syntax requires.
fn opt_with_path(prefix: &str, path: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(path.to_string_lossy().replace(',', ",,"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine<'a>(disk: Option<&'a Path>, tpm: Option<&'a Path>, accel: Accel) -> Machine<'a> {
        Machine {
            code: Path::new("/fw/CODE.fd"),
            vars: Path::new("/tmp/x/VARS.fd"),
            accel,
            memory_mib: 1024,
            cpus: 2,
            disk,
            tpm_socket: tpm,
            smm: false,
            extra_disk: None,
        }
    }

    fn joined(m: &Machine) -> String {
        qemu_args(m)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn args_table() {
        let disk = Path::new("/img/a,b.raw");
        let sock = Path::new("/tmp/x/tpm/sock");
        let cases: &[(Machine, &[&str], &[&str])] = &[
            (
                machine(Some(disk), None, Accel::Tcg),
                &[
                    "-machine q35 -accel tcg -m 1024 -smp 2",
                    "-no-reboot",
                    "-drive if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
                    "-drive if=pflash,format=raw,unit=1,file=/tmp/x/VARS.fd",
                    "-drive if=none,id=d0,format=raw,snapshot=on,file=/img/a,,b.raw -device virtio-blk-pci,drive=d0",
                    "-serial chardev:ser0",
                ],
                &["tpm", "kvm", "smm", "secure"],
            ),
            (
                machine(Some(disk), Some(sock), Accel::Kvm),
                &[
                    "-accel kvm",
                    "-chardev socket,id=chrtpm,path=/tmp/x/tpm/sock -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0",
                ],
                &["tcg"],
            ),
            (machine(None, None, Accel::Kvm), &["-accel kvm"], &["virtio-blk", "if=none"]),
            (
                Machine { smm: true, ..machine(Some(disk), None, Accel::Tcg) },
                &["-machine q35,smm=on -accel tcg", "-global driver=cfi.pflash01,property=secure,value=on"],
                &[],
            ),
        ];
        for (m, want, absent) in cases {
            let line = joined(m);
            for w in *want {
                assert!(line.contains(w), "missing {w:?} in {line}");
            }
            for a in *absent {
                assert!(!line.contains(a), "unexpected {a:?} in {line}");
            }
        }
    }

    #[test]
    fn vars_copy_is_private_and_writable() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("template.fd");
        fs::write(&template, b"vars").unwrap();
        fs::set_permissions(&template, fs::Permissions::from_mode(0o444)).unwrap();
        let copy = copy_vars(&template, dir.path()).unwrap();
        assert_ne!(copy, template);
        assert_eq!(fs::read(&copy).unwrap(), b"vars");
        assert_eq!(
            fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn outcome_table() {
        use std::os::unix::process::ExitStatusExt;
        let st = |code: i32| std::process::ExitStatus::from_raw(code << 8);
        let stderr = vec!["oops".to_string()];
        assert_eq!(outcome(Ended::Exited(st(0)), &stderr), Outcome::PoweredOff);
        assert_eq!(outcome(Ended::Timeout, &stderr).kind(), "timeout");
        assert_eq!(
            outcome(Ended::Stopped("x".into()), &stderr),
            Outcome::Stopped { reason: "x".into() }
        );
        let Outcome::QemuError { message } = outcome(Ended::Exited(st(1)), &stderr) else {
            panic!()
        };
        assert!(
            message.contains("oops") && message.contains("exit status: 1"),
            "{message}"
        );
        let Outcome::QemuError { message } =
            outcome(Ended::Fatal("KVM internal error".into()), &stderr)
        else {
            panic!()
        };
        assert!(message.contains("KVM internal error"), "{message}");
    }

    #[test]
    fn missing_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = BootSpec::new(dir.path().join("nope.raw"));
        let err = format!("{:#}", boot(&spec).unwrap_err());
        assert!(err.contains("nope.raw"), "{err}");
        spec.disk = dir.path().to_path_buf();
        spec.ovmf_code = dir.path().join("no-code.fd");
        let err = format!("{:#}", boot(&spec).unwrap_err());
        assert!(
            err.contains("no-code.fd") && err.contains("--ovmf-code"),
            "{err}"
        );
    }
}
