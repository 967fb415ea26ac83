//! Body of the `config_toml` fuzz target, shared with the stable replay test
//! `image-config/tests/fuzz_corpus_config_toml.rs` (included there by path): TOML parsing and
//! resolution of an image config. Errors are fine; a panic is a bug.

use std::path::Path;

/// Parses `data` as `image.toml` and, if that succeeds, resolves it against a base directory
/// that does not exist (relative paths stay unresolved; nothing is read from disk).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/nonexistent/fuzz/image.toml");
    let Ok(raw) = image_config::parse(text, file) else {
        return;
    };
    let env = image_config::Env {
        source_date_epoch: Some("1700000000".into()),
    };
    if let Ok(cfg) = image_config::resolve_raw(raw, file, Path::new("/nonexistent/fuzz"), &env) {
        let _ = format!("{cfg:?}");
    }
}
