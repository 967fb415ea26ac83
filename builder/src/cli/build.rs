//! `nodeimg build CONFIG [-o DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::Globals;
use crate::pipeline::{self, BuildOptions};

/// The embedded default node image configuration.
pub const DEFAULT_CONFIG: &str = include_str!("../default-image.toml");

/// Build a disk image, its UKI and its signed measurements.
///
/// Writes disk.raw, uki.efi, manifest.json, manifest.sigstore.json (when a signing key is
/// configured) and SHA256SUMS into the output directory, from an image.toml or, without CONFIG,
/// the embedded default node image. Outputs are staged and moved into place together at the end.
/// Debian package downloads are kept in a cache (--cache-dir) for the next build.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image configuration (image.toml; see docs/config.md). Default: the embedded node
    /// image (see --print-default-config).
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long, conflicts_with = "config")]
    pub print_default_config: bool,
    /// Output directory; files are staged inside it and moved into place at the end.
    #[arg(short, long, value_name = "DIR", default_value = "out")]
    pub output: PathBuf,
    /// Use this static nodeimg-init instead of the one embedded in nodeimg (also:
    /// $NODEIMG_INIT). Its SHA-256 is recorded in the manifest either way.
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,
    /// Cache for Debian package downloads and bootstrapped rootfs tars (default:
    /// $XDG_CACHE_HOME/nodeimg, else ~/.cache/nodeimg). Cached entries are checked against
    /// their recorded SHA-256 before use; outputs are byte-identical with or without the cache.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Use no cache: download and bootstrap everything (e.g. to check a rebuild from scratch).
    #[arg(long)]
    pub no_cache: bool,
    /// Disk formats to write besides disk.raw (repeatable; overrides `[output] formats`):
    /// qcow2 → disk.qcow2, vhd → disk.vhd (fixed, Azure), gce → disk.tar.gz, vmdk →
    /// disk.vmdk (streamOptimized).
    #[arg(long = "format", value_name = "FORMAT", value_enum)]
    pub formats: Vec<crate::formats::Format>,
}

pub fn run(args: Args, g: Globals) -> anyhow::Result<ExitCode> {
    if args.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return Ok(ExitCode::SUCCESS);
    }
    let env = image_config::Env::from_process();
    let mut cfg = match &args.config {
        Some(path) => image_config::load(path, &env)?,
        None => {
            let file = std::path::Path::new("<embedded default config>");
            let raw = image_config::parse(DEFAULT_CONFIG, file)?;
            image_config::resolve_raw(raw, file, std::path::Path::new("."), &env)?
        }
    };
    if !args.formats.is_empty() {
        let mut names: Vec<String> = args.formats.iter().map(|f| f.name().to_string()).collect();
        names.sort();
        names.dedup();
        cfg.formats = names;
    }
    let init = crate::initbin::InitSource::select(args.init.as_deref());
    let cache_dir = match (args.no_cache, args.cache_dir) {
        (true, _) => None,
        (false, Some(d)) => Some(d),
        (false, None) => crate::rootfs::debcache::default_dir(),
    };
    let opts = BuildOptions {
        out_dir: args.output.clone(),
        init,
        cache_dir,
    };
    let built =
        pipeline::build(&cfg, &opts).with_context(|| format!("building {}", cfg.file.display()))?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_default_config_is_valid() {
        let file = std::path::Path::new("default");
        let raw = image_config::parse(super::DEFAULT_CONFIG, file).unwrap();
        let cfg =
            image_config::resolve_raw(raw, file, std::path::Path::new("."), &Default::default())
                .unwrap();
        assert_eq!(cfg.root.mode, image_config::RootMode::VolatileOverlay);
        assert!(matches!(cfg.rootfs, image_config::RootfsSource::Debian(_)));
        assert!(cfg.kernel.modules.iter().any(|m| m == "overlay"));
    }
}
