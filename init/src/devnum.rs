//! Block device numbers (`major:minor`).

use std::fmt;

/// A device number as the kernel shows it in sysfs `dev` files and dm tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DevNum {
    /// Parses the `<major>:<minor>` text of a sysfs `dev` file (trailing newline allowed).
    pub fn parse(text: &str) -> Option<DevNum> {
        let (maj, min) = text.trim_end_matches('\n').split_once(':')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(maj) || !digits(min) {
            return None;
        }
        Some(DevNum {
            major: maj.parse().ok()?,
            minor: min.parse().ok()?,
        })
    }

    /// The `dev_t` for `mknod`.
    pub fn to_dev_t(self) -> libc::dev_t {
        libc::makedev(self.major, self.minor)
    }

    /// Splits a `dev_t` (for example `st_rdev`, or the `dev` a DM ioctl returns).
    pub fn from_dev_t(dev: libc::dev_t) -> DevNum {
        DevNum {
            major: libc::major(dev),
            minor: libc::minor(dev),
        }
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_text() {
        let cases = [
            ("254:1\n", Some((254, 1))),
            ("7:0", Some((7, 0))),
            ("259:1048575", Some((259, 1_048_575))),
            ("", None),
            ("254", None),
            (":1", None),
            ("1:", None),
            ("a:1", None),
            ("+1:2", None),
            ("1:2:3", None),
            ("99999999999:1", None),
        ];
        for (text, want) in cases {
            let got = DevNum::parse(text).map(|d| (d.major, d.minor));
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn dev_t_round_trip_and_display() {
        for (major, minor) in [(0, 0), (8, 1), (254, 0), (259, 300_000), (4095, 255)] {
            let d = DevNum { major, minor };
            assert_eq!(DevNum::from_dev_t(d.to_dev_t()), d);
            assert_eq!(d.to_string(), format!("{major}:{minor}"));
        }
    }
}
