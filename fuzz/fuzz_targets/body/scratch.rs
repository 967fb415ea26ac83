//! A private temporary directory for a fuzz body that must go through files.

use std::path::PathBuf;

/// One directory per target, process and thread, so parallel tests and fuzz jobs do not
/// collide.
pub fn dir(target: &str) -> PathBuf {
    let id = format!("{:?}", std::thread::current().id());
    let id: String = id.chars().filter(char::is_ascii_digit).collect();
    std::env::temp_dir().join(format!("nodeimg-fuzz-{target}-{}-{id}", std::process::id()))
}
