//! The one error type of the init: "what failed" plus "why", printed as a single console line.

use std::fmt;
use std::io;

/// A failure of one boot step.
///
/// Displayed as `<what>: <why>`; the init prefixes it with `nodeimg-init: error: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    what: String,
    why: String,
    errno: Option<i32>,
}

impl Error {
    /// An error with a free-form reason.
    pub fn msg(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error {
            what: what.into(),
            why: why.into(),
            errno: None,
        }
    }

    /// An error caused by a failed system call or I/O operation.
    pub fn io(what: impl Into<String>, err: &io::Error) -> Self {
        Error {
            what: what.into(),
            why: describe_io(err),
            errno: err.raw_os_error(),
        }
    }

    /// What was being done.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Why it failed.
    pub fn why(&self) -> &str {
        &self.why
    }

    /// The OS error number, when the cause was a system call.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

impl std::error::Error for Error {}

/// `ENOENT (No such file or directory)`-style text: the symbolic name is what people grep for.
pub fn describe_io(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(n) => match errno_name(n) {
            Some(name) => format!("{name} ({})", strip_os_suffix(err)),
            None => err.to_string(),
        },
        None => err.to_string(),
    }
}

fn strip_os_suffix(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

/// Symbolic names of the errno values a boot step is likely to see.
pub fn errno_name(n: i32) -> Option<&'static str> {
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTTY => "ENOTTY",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EBADMSG => "EBADMSG",
        libc::EUCLEAN => "EUCLEAN",
        _ => return None,
    };
    Some(name)
}

/// Adds "what was being done" to an `io::Result`.
pub trait Context<T> {
    /// Wraps the error with a lazily built description of the failed step.
    fn ctx<F: FnOnce() -> String>(self, what: F) -> Result<T, Error>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, what: F) -> Result<T, Error> {
        self.map_err(|e| Error::io(what(), &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_joins_what_and_why() {
        let cases = [
            (
                Error::msg("config", "line 3: unknown key"),
                "config: line 3: unknown key",
            ),
            (
                Error::io("mount /proc", &io::Error::from_raw_os_error(libc::EIO)),
                "mount /proc: EIO (Input/output error)",
            ),
            (
                Error::io("open x", &io::Error::other("boom")),
                "open x: boom",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn errno_is_kept_for_os_errors_only() {
        let e = Error::io("x", &io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(e.errno(), Some(libc::EIO));
        assert_eq!(Error::msg("x", "y").errno(), None);
    }

    #[test]
    fn unknown_errno_falls_back_to_std_text() {
        let e = Error::io("x", &io::Error::from_raw_os_error(4095));
        assert!(e.why().contains("4095"), "{}", e.why());
    }
}
