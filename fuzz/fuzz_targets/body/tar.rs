//! Body of the `tar` fuzz target, shared with the stable replay test
//! `builder/tests/fuzz_corpus_tar.rs` (included there by path): the rootfs tar reader
//! (plain, gzip or zstd, detected from the magic) behind `builder::rootfs::load`. The reader
//! takes a path, so the input is written to a private temporary directory first.
//! Errors are fine; a panic is a bug.

#[path = "scratch.rs"]
mod scratch;

/// Writes `data` to a temporary file and loads it as a `[rootfs] tar` source.
pub fn run(data: &[u8]) {
    let dir = scratch::dir("tar");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("creating the temporary work directory");
    let tar = dir.join("input.tar");
    std::fs::write(&tar, data).expect("writing the fuzz input to a temporary file");
    let source = image_config::RootfsSource::Tar(tar);
    if let Ok(loaded) = builder::rootfs::load(&source, 1_700_000_000, &work, None) {
        for entry in &loaded.tree.entries {
            let _ = loaded.tree.resolve(&entry.path);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
