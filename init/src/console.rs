//! Console messages and the one way the init fails: print one line, sync, power off.

use std::fs::OpenOptions;
use std::io::Write;

use crate::error::Error;
use crate::sys;

/// Prefix of every line the init prints.
pub const PREFIX: &str = "nodeimg-init";

/// The single console line for a fatal error.
pub fn error_line(err: &Error) -> String {
    format!("{PREFIX}: error: {err}")
}

/// Prints `nodeimg-init: <msg>`.
pub fn info(msg: &str) {
    print_line(&format!("{PREFIX}: {msg}"));
}

/// Prints `nodeimg-init: warning: <msg>`.
pub fn warn(msg: &str) {
    print_line(&format!("{PREFIX}: warning: {msg}"));
}

/// Prints a line verbatim on stdout (the console) and flushes; returns false if that failed.
///
/// The line goes out in one `write_all` so kernel messages are less likely to split it.
pub fn print_line(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// Appends a line to the kernel log with syslog priority `level` (0-7).
pub fn kmsg(level: u8, line: &str) {
    if let Ok(mut f) = OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = f.write_all(format!("<{}>{line}\n", level.min(7)).as_bytes());
    }
}

/// Reports `err` and powers the machine off. Never returns.
///
/// The line goes to the console and to the kernel log; the kernel-log copy is at debug level
/// so that it is not echoed to the console a second time, unless the console write failed.
pub fn fatal(err: &Error) -> ! {
    let line = error_line(err);
    let printed = print_line(&line);
    kmsg(if printed { 7 } else { 2 }, &line);
    power_off()
}

/// Syncs, waits for the console to drain and powers off; exits if that is not allowed.
pub fn power_off() -> ! {
    sys::sync();
    sys::drain_console();
    let e = sys::power_off();
    print_line(&format!("{PREFIX}: error: power off: {e}"));
    std::process::exit(1)
}

/// Routes panics to [`fatal`]: the panic message becomes the error line.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        fatal(&Error::msg(
            "internal",
            format!("panic{location}: {payload}"),
        ))
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_has_the_grepped_shape() {
        let e = Error::msg(
            "verity",
            "root filesystem failed verification (mount /dev/mapper/root: EIO)",
        );
        assert_eq!(
            error_line(&e),
            "nodeimg-init: error: verity: root filesystem failed verification (mount /dev/mapper/root: EIO)"
        );
    }
}
