//! `nodeimg build CONFIG [-o DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::Globals;
use crate::pipeline::{self, BuildOptions};

/// Build a disk image (disk.raw, uki.efi, manifest.json, SHA256SUMS) from an image.toml.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image configuration (image.toml; see docs/config.md).
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
    /// Output directory; files are staged inside it and moved into place at the end.
    #[arg(short, long, value_name = "DIR", default_value = "out")]
    pub output: PathBuf,
    /// The static nodeimg-init binary (default: $NODEIMG_INIT, next to nodeimg, or the cargo
    /// target dir's x86_64-unknown-linux-gnu build).
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,
}

pub fn run(args: Args, g: Globals) -> anyhow::Result<ExitCode> {
    let cfg = image_config::load(&args.config, &image_config::Env::from_process())?;
    let init = crate::initbin::locate(args.init.as_deref())?;
    let built = pipeline::build(
        &cfg,
        &BuildOptions {
            out_dir: args.output.clone(),
            init,
        },
    )
    .with_context(|| format!("building {}", args.config.display()))?;
    let m = &built.manifest;
    if g.json {
        println!("{}", serde_json::to_string_pretty(m)?);
    } else {
        println!(
            "built {} {} into {}",
            m.image.name,
            m.image.version,
            built.out_dir.display()
        );
        for (name, a) in &m.artifacts {
            println!("  {name:<10} {} ({} bytes)", a.sha256, a.size);
        }
        println!("  root hash  {}", m.verity.root_hash);
        println!("  stub       systemd-stub {}", m.stub.version);
        println!("  kernel     {}", m.kernel.release);
    }
    Ok(ExitCode::SUCCESS)
}
