//! The one helper for running external programs: errors carry the argv and the tail of stderr.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// How much of stderr goes into an error message.
const STDERR_TAIL: usize = 1024;

/// Runs `cmd` to completion with stdin closed and returns its output; a non-zero exit is an
/// error naming the command line and quoting the last KiB of stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let argv = describe(cmd);
    let out = cmd.stdin(Stdio::null()).output().with_context(|| {
        format!("starting `{argv}` (is it installed? scripts/setup.sh installs the host tools)")
    })?;
    if !out.status.success() {
        bail!(
            "`{argv}` failed ({}): {}",
            out.status,
            stderr_tail(&out.stderr)
        );
    }
    Ok(out)
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last [`STDERR_TAIL`] bytes of `stderr`, trimmed, lossily decoded.
pub fn stderr_tail(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&stderr[start..]).trim().to_string()
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_argv_and_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("sh -c echo boom"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let err = run(&mut Command::new("nodeimg-no-such-tool")).unwrap_err();
        assert!(format!("{err:#}").contains("nodeimg-no-such-tool"));
    }
}
