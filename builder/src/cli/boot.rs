//! `nodeimg boot`: boot a disk image under QEMU + OVMF and check its serial console, and
//! with `--manifest` the TPM's PCRs against the manifest (naming the first differing event of
//! the firmware event log on a mismatch).

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::json;

use super::Globals;
use crate::qemu::attest::{self, Attestation, Expected};
use crate::qemu::eventlog::{self, GuestEventLog};
use crate::qemu::{self, Accel, BootResult, BootSpec, ObservedPcrs, Outcome};

/// Console texts that fail every boot.
pub const DEFAULT_FAIL_ON: &[&str] = &["nodeimg-init: error:", "Kernel panic"];
/// What OVMF's boot manager prints when Secure Boot refuses an image ("BdsDxe: failed to load
/// Boot0001 … : Access Denied"); it then retries forever, so the text fails the boot at once.
pub const SECURE_BOOT_REFUSED: &str = "Access Denied";
/// Console lines quoted in a failure message.
const TAIL_LINES: usize = 20;

/// Boot a disk image under QEMU + OVMF and check its console and PCRs.
///
/// Boots under QEMU + OVMF (optionally with a software TPM) and checks the serial console:
/// exit 0 when every --expect text appeared and no --fail-on text did, and with --manifest when
/// every PCR the manifest lists equals what the TPM reported.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Raw disk image to boot; never modified (QEMU writes to a throw-away snapshot).
    #[arg(value_name = "DISK")]
    pub disk: PathBuf,
    /// Kill QEMU and fail after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    /// Attach a software TPM 2.0 (swtpm) with the SHA-256 and SHA-384 PCR banks active.
    #[arg(long)]
    pub tpm: bool,
    /// OVMF firmware code [default: /usr/share/OVMF/OVMF_CODE_4M.fd, with --secure-boot
    /// /usr/share/OVMF/OVMF_CODE_4M.secboot.fd].
    #[arg(long, value_name = "FILE")]
    pub ovmf_code: Option<PathBuf>,
    /// OVMF variable store template; the guest boots with a temporary copy
    /// [default: /usr/share/OVMF/OVMF_VARS_4M.fd, with --secure-boot DIR: DIR/OVMF_VARS.fd].
    #[arg(long, value_name = "FILE")]
    pub ovmf_vars: Option<PathBuf>,
    /// Boot with Secure Boot enforcing: the Secure Boot OVMF build (SMM, secure flash) and the
    /// keys enrolled in KEYS (a `nodeimg keygen --secure-boot` directory, or a VARS file). The
    /// firmware refusing the image ("Access Denied") fails the boot at once.
    #[arg(long, value_name = "KEYS")]
    pub secure_boot: Option<PathBuf>,
    /// How QEMU runs the guest; auto uses KVM only when a probe boot shows it works.
    #[arg(long, value_enum, value_name = "ACCEL", default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Text the console must show (repeatable); the boot stops once all have appeared.
    #[arg(long = "expect", value_name = "TEXT")]
    pub expect: Vec<String>,
    /// Text that fails the boot as soon as it appears (repeatable); always also
    /// "nodeimg-init: error:" and "Kernel panic".
    #[arg(long = "fail-on", value_name = "TEXT")]
    pub fail_on: Vec<String>,
    /// Write the serial console to FILE as it arrives.
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// Compare the PCRs nodeimg-init reports with this manifest.json's `pcrs` (every bank and
    /// PCR listed); on a mismatch, replay the firmware event log and name the first event that
    /// differs from the manifest's `events`.
    #[arg(long, value_name = "MANIFEST", requires = "tpm")]
    pub manifest: Option<PathBuf>,
    /// Write the firmware event log the guest sent (binary_bios_measurements) to FILE.
    #[arg(long, value_name = "FILE", requires = "tpm")]
    pub save_event_log: Option<PathBuf>,
    /// Ask the booted image for a TPM quote with this nonce (hex, 1–64 bytes): nodeimg-init
    /// creates an attestation key in the guest's TPM and quotes the pinned PCRs of both banks.
    /// The nonce reaches the guest on a small read-only disk that nothing measures.
    #[arg(long, value_name = "NONCE", requires_all = ["tpm", "evidence"])]
    pub quote: Option<String>,
    /// Where the quote goes: quote.msg, quote.sig (tpm2_quote's formats), ak.pem, nonce and
    /// eventlog.bin — the inputs of `nodeimg verify --quote`.
    #[arg(long, value_name = "DIR", requires = "quote")]
    pub evidence: Option<PathBuf>,
}

/// Boots, prints the summary (or JSON), and fails with the console tail when the check fails.
pub fn run(args: Args, g: Globals) -> Result<ExitCode> {
    let expected = args.manifest.as_deref().map(Expected::load).transpose()?;
    let nonce = args
        .quote
        .as_deref()
        .map(|n| hex::decode(n.trim()).map_err(|e| anyhow!("--quote {n:?} is not hex: {e}")))
        .transpose()?;
    // The request disk lives as long as the boot (the directory is removed on drop).
    let request = nonce
        .as_deref()
        .map(|n| -> Result<_> {
            let dir = tempfile::tempdir().context("a directory for the quote request")?;
            let disk = qemu::quote::request_disk(dir.path(), n)?;
            Ok((dir, disk))
        })
        .transpose()?;
    let wants_log = expected.is_some() || args.save_event_log.is_some() || nonce.is_some();
    let mut fail_on = args.fail_on.clone();
    if args.secure_boot.is_some() {
        fail_on.push(SECURE_BOOT_REFUSED.to_string());
    }
    let mut check = ConsoleCheck::new(args.expect.clone(), &fail_on);
    check.wait_for_event_log = wants_log;
    check.wait_for_quote = nonce.is_some();
    let (ovmf_code, ovmf_vars) = firmware(&args)?;
    let spec = BootSpec {
        timeout: Duration::from_secs(args.timeout),
        accel: args.accel,
        tpm: args.tpm,
        ovmf_code,
        ovmf_vars,
        secure_boot: args.secure_boot.is_some(),
        console_log: args.console_log.clone(),
        extra_disk: request.as_ref().map(|(_, disk)| disk.clone()),
        ..BootSpec::new(&args.disk)
    };
    let echo = !g.json && std::io::stderr().is_terminal();
    let result = qemu::boot_streaming(&spec, &mut |line| {
        if echo {
            eprintln!("{line}");
        }
        check.line(line)
    })?;
    let mut report = Report::new(&check, &result, args.timeout);
    let log = report.event_log(&result, wants_log);
    if let Some(path) = &args.save_event_log {
        save_event_log(path, log.as_ref(), &mut report.problems);
    }
    if let (Some(n), Some(dir)) = (&nonce, &args.evidence) {
        save_quote(
            &result,
            n,
            dir,
            log.as_ref(),
            args.manifest.as_deref(),
            &mut report,
        )?;
    }
    if let Some(e) = &expected {
        let a = attest::attest(e, report.pcrs.as_ref(), log.as_ref());
        report.problems.extend(a.problems.iter().cloned());
        report.attestation = Some(a);
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report.json(&result))?);
    } else {
        report.print_human(&result);
    }
    if report.problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    // The event log's base64 lines say nothing to a person; leave them out of the tail.
    let readable: String = result
        .log
        .lines()
        .filter(|l| !l.contains(eventlog::CHUNK))
        .flat_map(|l| [l, "\n"])
        .collect();
    let tail = match qemu::tail_lines(&readable, TAIL_LINES).join("\n") {
        t if t.trim().is_empty() => "(the console stayed empty)".to_string(),
        t => format!("last {TAIL_LINES} console lines:\n{t}"),
    };
    Err(anyhow!("{}\n{tail}", report.problems.join("\n")))
}

/// The firmware code and variable store template for the boot.
fn firmware(args: &Args) -> Result<(PathBuf, PathBuf)> {
    let Some(keys) = &args.secure_boot else {
        return Ok((
            args.ovmf_code
                .clone()
                .unwrap_or_else(|| qemu::DEFAULT_OVMF_CODE.into()),
            args.ovmf_vars
                .clone()
                .unwrap_or_else(|| qemu::DEFAULT_OVMF_VARS.into()),
        ));
    };
    let vars = match &args.ovmf_vars {
        Some(v) => v.clone(),
        None if keys.is_dir() => keys.join(crate::secureboot::VARS_FILE),
        None => keys.clone(),
    };
    if !vars.is_file() {
        return Err(anyhow!(
            "--secure-boot {}: no variable store {} (make one with nodeimg keygen --secure-boot \
             DIR, or pass a VARS file)",
            keys.display(),
            vars.display()
        ));
    }
    Ok((
        args.ovmf_code
            .clone()
            .unwrap_or_else(|| qemu::DEFAULT_OVMF_CODE_SECBOOT.into()),
        vars,
    ))
}

/// Writes the guest's quote as evidence files; with a manifest, checks it too (each failed
/// check is a problem). A missing or failed quote is a problem.
fn save_quote(
    result: &qemu::BootResult,
    nonce: &[u8],
    dir: &std::path::Path,
    log: Option<&GuestEventLog>,
    manifest: Option<&std::path::Path>,
    report: &mut Report,
) -> Result<()> {
    let quote = match qemu::quote::GuestQuote::from_console(&result.log) {
        None => {
            report.problems.push(
                "the guest printed no NODEIMG-QUOTE line (no TPM, an older nodeimg-init, or the \
                 boot stopped before the initrd)"
                    .to_string(),
            );
            return Ok(());
        }
        Some(Err(why)) => {
            report.problems.push(why);
            return Ok(());
        }
        Some(Ok(q)) => q,
    };
    let log_bytes = match log {
        Some(GuestEventLog::Log(b)) => Some(b.as_slice()),
        _ => None,
    };
    let written = quote.write_evidence(dir, nonce, log_bytes)?;
    report.evidence = written;
    if let Some(m) = manifest {
        let text = crate::infile::read_capped(m, crate::infile::MANIFEST_MAX, "manifest")?;
        let reference: measurements::attest::ReferenceValues = serde_json::from_slice(&text)
            .with_context(|| format!("{}: pcrs or events", m.display()))?;
        let evidence = measurements::attest::TpmEvidence {
            attest: &quote.attest,
            signature: &quote.signature,
            ak_spki_der: &quote.ak_spki_der,
            nonce,
            event_log: log_bytes,
        };
        for c in measurements::attest::verify_tpm_quote(&evidence, &reference) {
            if c.status == measurements::attest::Status::Failed {
                report
                    .problems
                    .push(format!("quote: {}: {}", c.check, c.detail));
            }
        }
    }
    Ok(())
}

/// Writes the guest's event log to `path`; a missing log is a problem.
fn save_event_log(path: &std::path::Path, log: Option<&GuestEventLog>, problems: &mut Vec<String>) {
    match log {
        Some(GuestEventLog::Log(bytes)) => {
            if let Err(e) = crate::outfile::write(path, bytes, 0o644) {
                problems.push(format!("saving the event log: {e:#}"));
            }
        }
        Some(GuestEventLog::Unavailable(why)) => {
            problems.push(format!("no event log to save: the guest sent none ({why})"))
        }
        None => problems.push("no event log to save: the console has none".into()),
    }
}

/// Which expected and failure texts the console showed.
#[derive(Debug)]
struct ConsoleCheck {
    expect: Vec<String>,
    fail_on: Vec<String>,
    seen: Vec<bool>,
    failed: Vec<String>,
    /// Keep going until the event-log transfer ended (for --manifest / --save-event-log).
    wait_for_event_log: bool,
    event_log_done: bool,
    /// Keep going until the guest answered the quote request (--quote).
    wait_for_quote: bool,
    quote_done: bool,
}

impl ConsoleCheck {
    fn new(expect: Vec<String>, extra_fail_on: &[String]) -> Self {
        let mut fail_on: Vec<String> = DEFAULT_FAIL_ON.iter().map(|s| s.to_string()).collect();
        fail_on.extend(
            extra_fail_on
                .iter()
                .filter(|f| !fail_on.contains(f))
                .cloned()
                .collect::<Vec<_>>(),
        );
        Self {
            seen: vec![false; expect.len()],
            expect,
            fail_on,
            failed: Vec::new(),
            wait_for_event_log: false,
            event_log_done: false,
            wait_for_quote: false,
            quote_done: false,
        }
    }

    /// Notes what `line` shows; `Break` once a failure text appeared or every expected text has.
    fn line(&mut self, line: &str) -> ControlFlow<String> {
        for (seen, text) in self.seen.iter_mut().zip(&self.expect) {
            *seen |= line.contains(text.as_str());
        }
        self.event_log_done |= eventlog::is_final_line(line);
        self.quote_done |= qemu::quote::is_final_line(line);
        for text in &self.fail_on {
            if line.contains(text.as_str()) && !self.failed.contains(text) {
                self.failed.push(text.clone());
            }
        }
        if let Some(text) = self.failed.first() {
            return ControlFlow::Break(format!("console showed failure text {text:?}"));
        }
        if self.wait_for_event_log && !self.event_log_done {
            return ControlFlow::Continue(());
        }
        if self.wait_for_quote && !self.quote_done {
            return ControlFlow::Continue(());
        }
        if !self.expect.is_empty() && self.seen.iter().all(|&s| s) {
            return ControlFlow::Break("console showed every expected text".to_string());
        }
        if self.wait_for_quote && self.expect.is_empty() {
            return ControlFlow::Break("console showed the quote".to_string());
        }
        if self.wait_for_event_log && self.expect.is_empty() {
            return ControlFlow::Break("console showed the end of the event log".to_string());
        }
        ControlFlow::Continue(())
    }

    fn seen(&self) -> Vec<&str> {
        self.pick(true)
    }

    fn missing(&self) -> Vec<&str> {
        self.pick(false)
    }

    fn pick(&self, want: bool) -> Vec<&str> {
        self.expect
            .iter()
            .zip(&self.seen)
            .filter(|(_, &s)| s == want)
            .map(|(t, _)| t.as_str())
            .collect()
    }
}

/// The verdict on one boot.
#[derive(Debug)]
struct Report<'a> {
    check: &'a ConsoleCheck,
    pcrs: Option<ObservedPcrs>,
    problems: Vec<String>,
    attestation: Option<Attestation>,
    /// Files `--evidence` wrote.
    evidence: Vec<PathBuf>,
}

impl<'a> Report<'a> {
    fn new(check: &'a ConsoleCheck, result: &BootResult, timeout_s: u64) -> Self {
        let mut problems = Vec::new();
        if !check.failed.is_empty() {
            problems.push(format!(
                "console showed failure text {}",
                quoted(&check.failed)
            ));
            if check.failed.iter().any(|f| f == SECURE_BOOT_REFUSED) {
                problems.push(
                    "the firmware refused the UKI under Secure Boot: it is unsigned, signed by a \
                     key whose certificate is not in the enrolled db, revoked by dbx, or was \
                     modified after signing (check with: sbverify --cert DIR/db.crt uki.efi)"
                        .to_string(),
                );
            }
        }
        let missing = check.missing();
        if !missing.is_empty() {
            problems.push(format!(
                "expected text never appeared: {}",
                quoted(&missing)
            ));
        }
        match &result.outcome {
            Outcome::Timeout => {
                problems.push(format!("timed out after {timeout_s} s (QEMU killed)"))
            }
            Outcome::QemuError { message } => problems.push(message.clone()),
            Outcome::PoweredOff | Outcome::Stopped { .. } => {}
        }
        let pcrs = result.pcrs().unwrap_or_else(|e| {
            problems.push(format!("{e:#}"));
            None
        });
        Self {
            check,
            pcrs,
            problems,
            attestation: None,
            evidence: Vec::new(),
        }
    }

    /// The event log from the console; a damaged transfer is a problem when `wanted`.
    fn event_log(&mut self, result: &BootResult, wanted: bool) -> Option<GuestEventLog> {
        match result.event_log() {
            Ok(log) => log,
            Err(e) => {
                if wanted {
                    self.problems.push(format!("{e:#}"));
                }
                None
            }
        }
    }

    fn json(&self, result: &BootResult) -> serde_json::Value {
        json!({
            "outcome": result.outcome.kind(),
            "ok": self.problems.is_empty(),
            "seen": self.check.seen(),
            "missing": self.check.missing(),
            "failed_on": self.check.failed,
            "problems": self.problems,
            "pcrs": self.pcrs,
            "attestation": self.attestation,
            "evidence": self.evidence,
            "accel": result.accel,
            "duration_s": (result.duration.as_secs_f64() * 10.0).round() / 10.0,
        })
    }

    fn print_human(&self, result: &BootResult) {
        let verdict = if self.problems.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        println!(
            "boot {verdict}: {} after {:.1} s ({})",
            result.outcome.kind(),
            result.duration.as_secs_f64(),
            result.accel.as_str()
        );
        for (label, texts) in [
            ("seen", self.check.seen()),
            ("missing", self.check.missing()),
        ] {
            if !texts.is_empty() {
                println!("  {label}: {}", quoted(&texts));
            }
        }
        if let Some(pcrs) = &self.pcrs {
            for (bank, values) in &pcrs.0 {
                let list: Vec<String> = values.keys().map(u32::to_string).collect();
                println!("  pcrs {bank}: {}", list.join(" "));
            }
        }
        if !self.evidence.is_empty() {
            let names: Vec<String> = self
                .evidence
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            println!("  quote evidence: {}", names.join(" "));
        }
        if let Some(a) = &self.attestation {
            println!("  PCRs against the manifest:");
            for r in &a.rows {
                let verdict = if r.ok { "ok" } else { "MISMATCH" };
                println!(
                    "    PCR {:>2} {:<6} {verdict:<8} expected {}",
                    r.pcr, r.bank, r.expected
                );
                if !r.ok {
                    let seen = r.observed.as_deref().unwrap_or("(not reported)");
                    println!("    {:24} observed {seen}", "");
                }
            }
        }
    }
}

fn quoted<S: AsRef<str>>(texts: &[S]) -> String {
    texts
        .iter()
        .map(|t| format!("{:?}", t.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expect: &[&str], lines: &[&str]) -> (ConsoleCheck, Option<String>) {
        let mut c = ConsoleCheck::new(
            expect.iter().map(|s| s.to_string()).collect(),
            &["BAD".to_string()],
        );
        let mut stopped = None;
        for l in lines {
            if let ControlFlow::Break(r) = c.line(l) {
                stopped = Some(r);
                break;
            }
        }
        (c, stopped)
    }

    #[test]
    fn console_check_table() {
        let (c, stop) = check(&["A", "B"], &["xx A", "nothing", "B yy", "later"]);
        assert_eq!((c.seen(), c.missing()), (vec!["A", "B"], vec![]));
        assert_eq!(stop.as_deref(), Some("console showed every expected text"));

        let (c, stop) = check(
            &["A", "B"],
            &["A", "[ 1.0] Kernel panic - not syncing", "B"],
        );
        assert_eq!((c.seen(), c.missing()), (vec!["A"], vec!["B"]));
        assert_eq!(c.failed, vec!["Kernel panic"]);
        assert!(stop.unwrap().contains("Kernel panic"));

        let (c, stop) = check(&[], &["BAD thing", "x"]);
        assert_eq!(c.failed, vec!["BAD"]);
        assert!(stop.is_some());

        let (c, stop) = check(&[], &["fine", "also fine"]);
        assert!(c.failed.is_empty() && stop.is_none());
    }

    #[test]
    fn waits_for_the_event_log_when_asked() {
        let mut c = ConsoleCheck::new(vec!["A".into()], &[]);
        c.wait_for_event_log = true;
        assert_eq!(c.line("A"), ControlFlow::Continue(()));
        assert_eq!(c.line("NODEIMG-EVENTLOG 0 AAAA"), ControlFlow::Continue(()));
        assert!(c.line("[ 1.2] NODEIMG-EVENTLOG-END ab").is_break());
        // Without --expect, the end of the event log ends the boot.
        let mut c = ConsoleCheck::new(vec![], &[]);
        c.wait_for_event_log = true;
        assert_eq!(c.line("x"), ControlFlow::Continue(()));
        assert!(c.line("NODEIMG-EVENTLOG-NONE no TPM").is_break());
        // A failure text still stops at once.
        let mut c = ConsoleCheck::new(vec![], &[]);
        c.wait_for_event_log = true;
        assert!(c.line("Kernel panic - not syncing").is_break());
    }

    #[test]
    fn manifest_and_event_log_need_tpm() {
        use clap::Parser;
        for flag in ["--manifest", "--save-event-log"] {
            let err = crate::cli::Cli::try_parse_from(["nodeimg", "boot", "d.raw", flag, "m"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--tpm"), "{flag}: {err}");
            assert!(crate::cli::Cli::try_parse_from([
                "nodeimg", "boot", "d.raw", "--tpm", flag, "m"
            ])
            .is_ok());
        }
    }

    #[test]
    fn default_fail_on_is_not_duplicated() {
        let c = ConsoleCheck::new(vec![], &["Kernel panic".to_string(), "x".to_string()]);
        assert_eq!(c.fail_on, vec!["nodeimg-init: error:", "Kernel panic", "x"]);
    }

    fn result(outcome: Outcome, log: &str) -> BootResult {
        BootResult {
            log: log.to_string(),
            outcome,
            duration: Duration::from_millis(1234),
            accel: Accel::Tcg,
        }
    }

    #[test]
    fn report_table() {
        let (ok_check, _) = check(&["A"], &["A"]);
        let (missing_check, _) = check(&["A"], &["b"]);
        let (none_check, _) = check(&[], &[]);
        let stopped = Outcome::Stopped { reason: "r".into() };
        let cases: &[(&ConsoleCheck, Outcome, &str, &[&str])] = &[
            (&ok_check, stopped.clone(), "A\n", &[]),
            (&none_check, Outcome::PoweredOff, "", &[]),
            (
                &missing_check,
                Outcome::PoweredOff,
                "b\n",
                &["never appeared: \"A\""],
            ),
            (
                &none_check,
                Outcome::Timeout,
                "",
                &["timed out after 300 s"],
            ),
            (
                &none_check,
                Outcome::QemuError {
                    message: "qemu broke".into(),
                },
                "",
                &["qemu broke"],
            ),
            (
                &ok_check,
                stopped,
                "A\nNODEIMG-PCRS {oops\n",
                &["NODEIMG-PCRS line (console line 2)"],
            ),
        ];
        for (c, outcome, log, want) in cases {
            let r = result(outcome.clone(), log);
            let report = Report::new(c, &r, 300);
            assert_eq!(report.problems.len(), want.len(), "{:?}", report.problems);
            for (p, w) in report.problems.iter().zip(*want) {
                assert!(p.contains(w), "{p:?} lacks {w:?}");
            }
            let j = report.json(&r);
            assert_eq!(j["ok"], want.is_empty());
            assert_eq!(j["duration_s"], 1.2);
            assert_eq!(j["accel"], "tcg");
        }
    }

    #[test]
    fn args_parse() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "nodeimg",
            "boot",
            "d.raw",
            "--expect",
            "A",
            "--expect",
            "B",
            "--fail-on",
            "C",
            "--accel",
            "tcg",
            "--timeout",
            "7",
            "--json",
        ])
        .unwrap();
        let crate::cli::Command::Boot(a) = cli.command else {
            panic!("not boot")
        };
        assert_eq!(
            (a.expect.len(), a.fail_on.len(), a.timeout, a.accel),
            (2, 1, 7, Accel::Tcg)
        );
        assert_eq!(a.ovmf_code, None);
        assert_eq!(
            firmware(&a).unwrap().0,
            PathBuf::from(qemu::DEFAULT_OVMF_CODE)
        );
        assert!(cli.json);
    }
}
