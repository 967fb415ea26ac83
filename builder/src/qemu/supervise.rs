//! Runs a child process (QEMU) under a hard deadline: its stdout is the serial console,
//! read line by line; its stderr is watched for fatal messages. The child is always killed
//! and reaped, whichever way the run ends.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::console::{ConsoleLog, LineSplitter};
use crate::tool;

/// Lines of stderr kept for error messages.
const STDERR_KEEP: usize = 20;

/// A spawned child that is killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    child: Child,
    argv: String,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed. The child also gets SIGKILL if this thread dies
    /// first (`PR_SET_PDEATHSIG`), so a killed nodeimg leaves no QEMU or swtpm behind.
    pub(crate) fn spawn(cmd: &mut Command) -> Result<Self> {
        let argv = tool::describe(cmd);
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe; it touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.stdin(Stdio::null()).spawn().with_context(|| {
            format!("starting `{argv}` (is it installed? scripts/setup.sh installs the host tools)")
        })?;
        tracing::debug!(pid = child.id(), "started `{argv}`");
        Ok(Self { child, argv })
    }

    /// The child's process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub(crate) fn argv(&self) -> &str {
        &self.argv
    }

    /// Takes the piped stdout and stderr (once).
    fn take_pipes(&mut self) -> Result<(ChildStdout, ChildStderr)> {
        let out = self
            .child
            .stdout
            .take()
            .context("child stdout is not piped")?;
        let err = self
            .child
            .stderr
            .take()
            .context("child stderr is not piped")?;
        Ok((out, err))
    }

    /// The exit status if the child has exited.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("waiting for `{}`", self.argv))
    }

    /// Kills the child if it still runs and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            tracing::debug!(pid = self.child.id(), "killing `{}`", self.argv);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a supervised run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The child exited by itself.
    Exited(ExitStatus),
    /// A stop pattern or the line callback ended the run; the text says which.
    Stopped(String),
    /// The deadline passed.
    Timeout,
    /// A fatal stderr line was seen (the line).
    Fatal(String),
}

/// What a supervised run returns.
#[derive(Debug)]
pub(crate) struct Supervised {
    pub ended: Ended,
    pub log: String,
    /// The last lines QEMU wrote to stderr.
    pub stderr: Vec<String>,
}

/// What to watch for while the child runs.
pub(crate) struct Watch<'a> {
    pub deadline: Instant,
    /// Stop as soon as a console line (or the unfinished last line) contains one of these.
    pub stop_on: &'a [String],
    /// Stop as soon as a stderr line contains one of these (the run ended in error).
    pub fatal_stderr: &'a [&'a str],
    /// Called with every complete console line; `Break(reason)` stops the run.
    pub on_line: &'a mut dyn FnMut(&str) -> ControlFlow<String>,
    /// Every console line is also appended here as it arrives.
    pub log_file: Option<File>,
}

enum Event {
    Stdout(Vec<u8>),
    StdoutEof,
    Stderr(String),
}

/// Runs `child` (spawned with piped stdout and stderr) until it exits, a stop condition
/// matches, or the deadline passes; then kills it (unless it exited) and reaps it.
pub(crate) fn supervise(child: &mut ChildGuard, watch: Watch<'_>) -> Result<Supervised> {
    let (stdout, stderr) = child.take_pipes()?;
    let (tx, rx) = mpsc::channel();
    spawn_stdout_reader(stdout, tx.clone());
    spawn_stderr_reader(stderr, tx);
    let mut state = State {
        watch,
        splitter: LineSplitter::default(),
        log: ConsoleLog::default(),
        stderr: Vec::new(),
    };
    let ended = match state.pump(&rx)? {
        Some(ended) => ended,
        None => state.wait_exit(child)?,
    };
    child.kill();
    state.drain_stderr(&rx);
    if let Some(last) = state.splitter.finish() {
        state.record(&last);
    }
    Ok(Supervised {
        ended,
        log: state.log.into_text(),
        stderr: state.stderr,
    })
}

struct State<'a> {
    watch: Watch<'a>,
    splitter: LineSplitter,
    log: ConsoleLog,
    stderr: Vec<String>,
}

impl State<'_> {
    /// Handles events until stdout ends (`None`) or the run must stop (`Some`).
    fn pump(&mut self, rx: &Receiver<Event>) -> Result<Option<Ended>> {
        loop {
            let left = self
                .watch
                .deadline
                .saturating_duration_since(Instant::now());
            let event = match rx.recv_timeout(left) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => return Ok(Some(Ended::Timeout)),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            };
            let stop = match event {
                Event::Stdout(bytes) => self.console(&bytes),
                Event::StdoutEof => return Ok(None),
                Event::Stderr(line) => self.stderr_line(line),
            };
            if stop.is_some() {
                return Ok(stop);
            }
        }
    }

    /// Records the completed lines of `bytes` and checks the stop conditions.
    fn console(&mut self, bytes: &[u8]) -> Option<Ended> {
        for line in self.splitter.push(bytes) {
            self.record(&line);
            if let Some(p) = self.matching_stop(&line) {
                return Some(Ended::Stopped(format!("console line matched {p:?}")));
            }
            if let ControlFlow::Break(reason) = (self.watch.on_line)(&line) {
                return Some(Ended::Stopped(reason));
            }
        }
        let pending = self.splitter.pending();
        let p = self.matching_stop(&pending)?;
        Some(Ended::Stopped(format!("console text matched {p:?}")))
    }

    fn matching_stop(&self, text: &str) -> Option<&str> {
        self.watch
            .stop_on
            .iter()
            .map(String::as_str)
            .find(|p| text.contains(p))
    }

    fn record(&mut self, line: &str) {
        tracing::trace!(target: "nodeimg::console", "{line}");
        self.log.push(line);
        if let Some(f) = &mut self.watch.log_file {
            if let Err(e) = writeln!(f, "{line}") {
                tracing::warn!("writing the console log: {e}; no longer writing it");
                self.watch.log_file = None;
            }
        }
    }

    fn stderr_line(&mut self, line: String) -> Option<Ended> {
        tracing::debug!(target: "nodeimg::qemu", "stderr: {line}");
        let fatal = self.watch.fatal_stderr.iter().any(|p| line.contains(p));
        if self.stderr.len() == STDERR_KEEP {
            self.stderr.remove(0);
        }
        self.stderr.push(line.clone());
        fatal.then_some(Ended::Fatal(line))
    }

    /// After stdout ended: waits for the child to exit, up to the deadline.
    fn wait_exit(&mut self, child: &mut ChildGuard) -> Result<Ended> {
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Ended::Exited(status));
            }
            if Instant::now() >= self.watch.deadline {
                return Ok(Ended::Timeout);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Collects stderr lines still in flight once the child is gone (bounded wait).
    fn drain_stderr(&mut self, rx: &Receiver<Event>) {
        let until = Instant::now() + Duration::from_millis(500);
        while let Ok(event) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            match event {
                Event::Stderr(line) => {
                    self.stderr_line(line);
                }
                Event::Stdout(bytes) => {
                    for line in self.splitter.push(&bytes) {
                        self.record(&line);
                    }
                }
                Event::StdoutEof => {}
            }
        }
    }
}

fn spawn_stdout_reader(mut stdout: ChildStdout, tx: Sender<Event>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 8192];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Event::Stdout(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Event::StdoutEof);
    });
}

fn spawn_stderr_reader(stderr: ChildStderr, tx: Sender<Event>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if tx.send(Event::Stderr(text)).is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ChildGuard {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        ChildGuard::spawn(&mut cmd).unwrap()
    }

    fn run(script: &str, secs: u64, stop_on: &[String], fatal: &[&str]) -> (Supervised, Duration) {
        let mut child = sh(script);
        let start = Instant::now();
        let mut on_line = |_: &str| ControlFlow::Continue(());
        let watch = Watch {
            deadline: start + Duration::from_secs(secs),
            stop_on,
            fatal_stderr: fatal,
            on_line: &mut on_line,
            log_file: None,
        };
        let s = supervise(&mut child, watch).unwrap();
        assert!(child.try_wait().unwrap().is_some(), "child must be reaped");
        (s, start.elapsed())
    }

    #[test]
    fn exit_status_and_log() {
        let (s, _) = run("printf 'a\\r\\nb\\n'; printf partial; exit 3", 10, &[], &[]);
        assert!(
            matches!(s.ended, Ended::Exited(st) if st.code() == Some(3)),
            "{:?}",
            s.ended
        );
        assert_eq!(s.log, "a\nb\npartial\n");
    }

    #[test]
    fn deadline_kills_a_hanging_child() {
        let (s, took) = run("echo started; exec sleep 60", 1, &[], &[]);
        assert!(matches!(s.ended, Ended::Timeout), "{:?}", s.ended);
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert_eq!(s.log, "started\n");
    }

    #[test]
    fn stop_pattern_ends_early_even_without_newline() {
        let (s, took) = run(
            "echo one; printf 'Shell> '; exec sleep 60",
            30,
            &["Shell>".into()],
            &[],
        );
        assert!(
            matches!(&s.ended, Ended::Stopped(r) if r.contains("Shell>")),
            "{:?}",
            s.ended
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[test]
    fn fatal_stderr_line_ends_the_run() {
        let (s, took) = run(
            "echo 'KVM internal error. Suberror: 1' >&2; exec sleep 60",
            30,
            &[],
            &["KVM internal error"],
        );
        assert!(
            matches!(&s.ended, Ended::Fatal(l) if l.contains("Suberror")),
            "{:?}",
            s.ended
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert_eq!(s.stderr, vec!["KVM internal error. Suberror: 1"]);
    }

    #[test]
    fn callback_can_stop() {
        let mut child = sh("echo a; echo b; echo c; exec sleep 60");
        let mut seen = Vec::new();
        let mut on_line = |l: &str| {
            seen.push(l.to_string());
            if l == "b" {
                ControlFlow::Break("saw b".to_string())
            } else {
                ControlFlow::Continue(())
            }
        };
        let watch = Watch {
            deadline: Instant::now() + Duration::from_secs(30),
            stop_on: &[],
            fatal_stderr: &[],
            on_line: &mut on_line,
            log_file: None,
        };
        let s = supervise(&mut child, watch).unwrap();
        assert!(
            matches!(&s.ended, Ended::Stopped(r) if r == "saw b"),
            "{:?}",
            s.ended
        );
        assert_eq!(seen[..2], ["a", "b"]);
    }
}
