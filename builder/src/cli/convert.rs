//! `nodeimg convert DISK --format F [-o OUT]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::Globals;
use crate::formats::Format;

/// Write a raw disk image in a cloud format (what `build --format` writes).
///
/// The same writers as the build: deterministic (the VHD's unique id comes from the disk's
/// digest, dates from SOURCE_DATE_EPOCH, else 0), streamed, no qemu-img. The output is written
/// next to its final name and renamed into place; an existing OUT is refused.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A raw disk image (disk.raw).
    #[arg(value_name = "DISK")]
    pub disk: PathBuf,
    /// qcow2, vhd (fixed, Azure), gce (tar.gz) or vmdk (streamOptimized).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Format,
    /// Where to write [default: the format's file name next to DISK].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
}

pub fn run(a: Args, g: Globals) -> Result<ExitCode> {
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| a.disk.with_file_name(a.format.file_name()));
    anyhow::ensure!(
        std::fs::symlink_metadata(&out).is_err(),
        "{} exists; remove it or give another -o",
        out.display()
    );
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .context("SOURCE_DATE_EPOCH is not a number")
        })
        .transpose()?
        .unwrap_or(0);
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    // Mode 0666 less the umask, as for any new file (not the temporary file's 0600).
    let tmp = tempfile::Builder::new()
        .prefix(".nodeimg-convert-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("a temporary file in {}", dir.display()))?;
    // A disk truncated under the conversion ends it with an error, and this file goes too.
    let _remove = crate::mmap::remove_on_fault(tmp.path());
    let (sha, size) = a.format.write(&a.disk, None, epoch, tmp.path())?;
    tmp.persist_noclobber(&out)
        .map_err(|e| anyhow::anyhow!("moving the output to {}: {}", out.display(), e.error))?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "output": out, "format": a.format.name(), "sha256": sha, "size": size })
        );
    } else {
        println!(
            "wrote {} ({}, {size} bytes, sha256 {sha})",
            out.display(),
            a.format.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}
