//! Builds nodeimg-init (PID 1 of every image's initrd) as a static x86-64 binary and leaves it in
//! `$OUT_DIR/nodeimg-init`, where `src/initbin.rs` embeds it: one `cargo build`, `cargo run` or
//! `cargo install --path builder` gives a `nodeimg` that builds images with no other step.
//!
//! The init is part of every image, so its bytes must not depend on how `nodeimg` was built:
//! always the release profile, always `--locked` against the workspace's Cargo.lock, the
//! caller's RUSTFLAGS/profile overrides dropped, source and registry paths remapped. It is built
//! by a nested cargo into its own target directory beside the outer one (`<target>/nodeimg-init`),
//! shared by every profile so `cargo build`, `cargo test` and `cargo build --release` compile it
//! once.
//!
//! `NODEIMG_EMBED_INIT=PATH` embeds a prebuilt static binary instead (for packagers who build
//! the init separately); `nodeimg` checks at run time that it is a static x86-64 ELF.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let dest = out_dir.join("nodeimg-init");
    println!("cargo:rerun-if-env-changed=NODEIMG_EMBED_INIT");
    if let Some(prebuilt) = env::var_os("NODEIMG_EMBED_INIT") {
        println!("cargo:rerun-if-changed={}", Path::new(&prebuilt).display());
        copy(Path::new(&prebuilt), &dest);
        export_digest(&dest);
        return;
    }
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let ws = manifest_dir
        .parent()
        .expect("builder/ lives in the workspace");
    let init_dir = ws.join("init");
    if !init_dir.join("Cargo.toml").is_file() {
        panic!(
            "nodeimg-init's source is not at {} (build nodeimg from the nodeimg workspace, \
             or set NODEIMG_EMBED_INIT to a prebuilt static nodeimg-init)",
            init_dir.display()
        );
    }
    for p in ["init/src", "init/Cargo.toml", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", ws.join(p).display());
    }
    let target_dir = init_target_dir(&out_dir);
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent-cargo-home"));
    let flags = [
        "-C".to_string(),
        "target-feature=+crt-static".to_string(),
        format!("--remap-path-prefix={}=/nodeimg", ws.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/target", target_dir.display()),
    ];
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(ws)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "nodeimg-init",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    // Nothing of the outer build's configuration may reach the init's bytes.
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k == "RUSTFLAGS"
            || k == "CARGO_INCREMENTAL"
            || k == "CARGO_TARGET_DIR"
            || k == "CARGO_BUILD_TARGET_DIR"
            || k == "CARGO_BUILD_RUSTFLAGS"
            || k.starts_with("CARGO_PROFILE_")
            || (k.starts_with("CARGO_TARGET_") && k.ends_with("_RUSTFLAGS"))
        {
            cmd.env_remove(&k);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build nodeimg-init: {e}"));
    if !status.success() {
        panic!("building nodeimg-init (static, {TARGET}) failed: {status}");
    }
    copy(&target_dir.join(TARGET).join("release/nodeimg-init"), &dest);
    export_digest(&dest);
}

/// `NODEIMG_INIT_SHA256` for `nodeimg --version` (the init is part of every image it builds).
fn export_digest(init: &Path) {
    use sha2::Digest;
    let bytes = std::fs::read(init).unwrap_or_else(|e| panic!("reading {}: {e}", init.display()));
    let digest = sha2::Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=NODEIMG_INIT_SHA256={hex}");
}

/// `<target>/nodeimg-init`, from OUT_DIR = `<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`;
/// OUT_DIR itself if it has another shape.
fn init_target_dir(out_dir: &Path) -> PathBuf {
    let profile_dir = out_dir.ancestors().nth(3);
    let build = out_dir.ancestors().nth(2);
    match (profile_dir.and_then(Path::parent), build) {
        (Some(target), Some(b)) if b.file_name().is_some_and(|n| n == "build") => {
            target.join("nodeimg-init")
        }
        _ => out_dir.join("init-target"),
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}
