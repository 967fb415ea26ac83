//! `/etc/nodeimg-init.conf`, written by the builder into the initrd.
//!
//! UTF-8 lines of `<key> <value>`; blank lines and lines starting with `#` are ignored.
//!
//! | key | value |
//! |---|---|
//! | `module` | absolute path of a `.ko` in the initrd; repeated, in load order |
//! | `root-mode` | `read-only` or `volatile-overlay` (required, once) |
//! | `init` | absolute path of the program to exec in the new root (default `/sbin/init`) |

use std::fmt;
use std::path::PathBuf;

/// Where the config lives inside the initrd.
pub const CONFIG_PATH: &str = "/etc/nodeimg-init.conf";

/// Program started in the new root when the config names none.
pub const DEFAULT_INIT: &str = "/sbin/init";

/// How the verified root is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootMode {
    /// The erofs root is mounted read-only at `/sysroot`.
    ReadOnly,
    /// The erofs root is the lower layer of an overlay with a tmpfs upper layer.
    VolatileOverlay,
}

/// The parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Kernel modules to load, in order.
    pub modules: Vec<PathBuf>,
    /// How to mount the root.
    pub root_mode: RootMode,
    /// Program to exec after `switch_root`.
    pub init: PathBuf,
}

/// A configuration error, naming the 1-based line when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number, `None` for whole-file problems.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "line {n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Default)]
struct Builder {
    modules: Vec<PathBuf>,
    root_mode: Option<RootMode>,
    init: Option<PathBuf>,
}

/// Parses the config text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut b = Builder::default();
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        apply_line(&mut b, line).map_err(|message| ConfigError {
            line: Some(idx + 1),
            message,
        })?;
    }
    let root_mode = b.root_mode.ok_or_else(|| ConfigError {
        line: None,
        message: "missing `root-mode` (read-only or volatile-overlay)".into(),
    })?;
    Ok(Config {
        modules: b.modules,
        root_mode,
        init: b.init.unwrap_or_else(|| PathBuf::from(DEFAULT_INIT)),
    })
}

fn apply_line(b: &mut Builder, line: &str) -> Result<(), String> {
    let (key, value) = match line.split_once(char::is_whitespace) {
        Some((k, v)) => (k, v.trim()),
        None => (line, ""),
    };
    match key {
        "module" => b.modules.push(absolute_path(key, value)?),
        "root-mode" => {
            if b.root_mode.is_some() {
                return Err("`root-mode` given twice".into());
            }
            b.root_mode = Some(parse_root_mode(value)?);
        }
        "init" => {
            if b.init.is_some() {
                return Err("`init` given twice".into());
            }
            b.init = Some(absolute_path(key, value)?);
        }
        other => {
            return Err(format!(
                "unknown key `{other}` (expected module, root-mode or init)"
            ))
        }
    }
    Ok(())
}

fn parse_root_mode(value: &str) -> Result<RootMode, String> {
    match value {
        "read-only" => Ok(RootMode::ReadOnly),
        "volatile-overlay" => Ok(RootMode::VolatileOverlay),
        other => Err(format!(
            "`root-mode {other}`: expected read-only or volatile-overlay"
        )),
    }
}

fn absolute_path(key: &str, value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err(format!("`{key}` needs a path"));
    }
    if !value.starts_with('/') {
        return Err(format!("`{key} {value}`: path must be absolute"));
    }
    if value.contains('\0') {
        return Err(format!("`{key}`: path contains a NUL byte"));
    }
    Ok(PathBuf::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Config {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn parses_valid_configs() {
        let full = "# generated\n\nmodule /lib/modules/a.ko\n  module   /lib/modules/b c.ko  \n\
                    root-mode volatile-overlay\ninit /usr/lib/systemd/systemd\n";
        let c = ok(full);
        assert_eq!(
            c.modules,
            [
                PathBuf::from("/lib/modules/a.ko"),
                PathBuf::from("/lib/modules/b c.ko")
            ]
        );
        assert_eq!(c.root_mode, RootMode::VolatileOverlay);
        assert_eq!(c.init, PathBuf::from("/usr/lib/systemd/systemd"));

        let minimal = ok("root-mode read-only");
        assert!(minimal.modules.is_empty());
        assert_eq!(minimal.root_mode, RootMode::ReadOnly);
        assert_eq!(minimal.init, PathBuf::from(DEFAULT_INIT));

        let tabs = ok("\troot-mode\tread-only\r\n#x\r\n");
        assert_eq!(tabs.root_mode, RootMode::ReadOnly);
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        let cases = [
            (
                "root-mode read-only\nfoo bar\n",
                Some(2),
                "unknown key `foo`",
            ),
            (
                "root-mode read-only\n\n#c\nmodule\n",
                Some(4),
                "needs a path",
            ),
            (
                "module lib/a.ko\nroot-mode read-only",
                Some(1),
                "must be absolute",
            ),
            (
                "root-mode rw",
                Some(1),
                "expected read-only or volatile-overlay",
            ),
            ("root-mode read-only\nroot-mode read-only", Some(2), "twice"),
            ("root-mode read-only\ninit /a\ninit /b", Some(3), "twice"),
            ("init relative", Some(1), "must be absolute"),
            ("module /a\0b\nroot-mode read-only", Some(1), "NUL"),
            ("module /a.ko\n", None, "missing `root-mode`"),
            ("", None, "missing `root-mode`"),
            ("Root-Mode read-only", Some(1), "unknown key"),
        ];
        for (text, line, needle) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.to_string().contains(needle), "{text:?}: {err}");
        }
    }
}
