//! `image.toml`: parse (pure, from a string) → resolve (defaults that depend on other keys) →
//! validate (cross-field rules). Every error names the file, the key path and gives a hint.
//!
//! The result, [`ImageConfig`], is immutable; the builder never looks at the TOML again.

mod resolve;
pub mod schema;

use std::fmt;
use std::path::{Path, PathBuf};

pub use resolve::{
    DebianSource, DiskConfig, ImageConfig, KernelConfig, MeasurementsConfig, RootConfig,
    RootfsSource, SecureBootConfig, SigstoreSigning, SnpConfig, SnpIdBlockConfig, SnpPolicyFields,
    StubSource, TdxConfig, UkiConfig, VerityConfig, DEFAULT_MODULES, SNP_VCPUS, TDX_EDK2_LAYOUTS,
};
pub use schema::{Bank, Filesystem, HashAlgorithm, OutputFormat, RawConfig, RootMode};

/// A configuration problem: which file, which key, what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key path in the user's spelling (`verity.data-block-size`), or `(file)`.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl ConfigError {
    pub(crate) fn new(file: &Path, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Values from the environment that resolution may use (kept explicit so parsing stays pure).
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `$SOURCE_DATE_EPOCH`, used when `image.source-date-epoch` is not set.
    pub source_date_epoch: Option<String>,
}

impl Env {
    /// Reads the variables nodeimg honours from the process environment.
    pub fn from_process() -> Self {
        Env {
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok(),
        }
    }
}

/// Parses TOML text. `file` is only used in error messages.
pub fn parse(text: &str, file: &Path) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." {
            "(file)".to_string()
        } else {
            key
        };
        let inner = e.into_inner();
        let mut msg = inner.message().to_string();
        if let Some(span) = inner.span() {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            msg = format!("line {line}: {msg}");
        }
        let hint = if msg.contains("unknown field") {
            "remove the key or fix its spelling; docs/config.md lists every key"
        } else {
            "see docs/config.md for the expected type and values"
        };
        ConfigError::new(file, &key, msg).hint(hint)
    })
}

/// Reads, parses, resolves and validates a config file. Relative paths in it are relative to
/// the file's directory.
pub fn load(file: &Path, env: &Env) -> Result<ImageConfig, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigError::new(file, "(file)", format!("cannot read: {e}"))
            .hint("pass the path of an image.toml")
    })?;
    let raw = parse(&text, file)?;
    let base = file.parent().unwrap_or(Path::new("."));
    resolve::resolve(raw, file, base, env)
}

/// Resolves and validates an already-parsed config (for embedded configs or tests).
pub fn resolve_raw(
    raw: RawConfig,
    file: &Path,
    base_dir: &Path,
    env: &Env,
) -> Result<ImageConfig, ConfigError> {
    resolve::resolve(raw, file, base_dir, env)
}
