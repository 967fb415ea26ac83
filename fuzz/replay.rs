//! Stable corpus replay shared by the `tests/fuzz_corpus_*.rs` tests of the crates that own
//! the parsers (included there by path): every file of `fuzz/corpus/<target>/` goes through
//! the same body the cargo-fuzz target runs. Errors are fine; a panic fails the test with the
//! file's name.

use std::path::{Path, PathBuf};

/// The corpus directory of `target`, from a crate directory next to `fuzz/`.
pub fn corpus_dir(manifest_dir: &str, target: &str) -> PathBuf {
    Path::new(manifest_dir).join("../fuzz/corpus").join(target)
}

/// Runs `body` on every file of `target`'s corpus except the `known_crashes` (file names of
/// reproducers for panics not fixed yet), requiring at least `min_files` files.
pub fn replay(
    manifest_dir: &str,
    target: &str,
    min_files: usize,
    known_crashes: &[&str],
    body: fn(&[u8]),
) {
    let dir = corpus_dir(manifest_dir, target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("corpus directory entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= min_files,
        "{}: seed corpus missing ({} files, want {min_files})",
        dir.display(),
        files.len()
    );
    let mut panics = Vec::new();
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        if known_crashes.contains(&name) {
            eprintln!("SKIP known crash (not fixed yet): {}", path.display());
            continue;
        }
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panics.push(path.display().to_string());
        }
    }
    assert!(panics.is_empty(), "panics on corpus inputs: {panics:#?}");
}
