//! `nodeimg measure tdx`: the TDX MRTD of a firmware image (lowercase hex alone on stdout;
//! `--json` for an object).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use measurements::cvm::{tdx, MrtdOrder, Ovmf};
use measurements::manifest::TdxEntry;
use sha2::{Digest as _, Sha256};

use crate::cli::Globals;

/// Intel TDX MRTD of a unified OVMF image with TDVF metadata.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The -bios firmware image (a unified OVMF.fd; CODE-only files carry unusable offsets).
    #[arg(long, value_name = "PATH")]
    pub ovmf: PathBuf,
    /// Order the records per section (Intel's QEMU 8.x TDX stack) instead of per page
    /// (upstream KVM with QEMU ≥ 9).
    #[arg(long)]
    pub two_pass: bool,
}

pub fn run(a: Args, g: Globals) -> Result<ExitCode> {
    let bytes = std::fs::read(&a.ovmf).with_context(|| format!("reading {}", a.ovmf.display()))?;
    let order = if a.two_pass {
        MrtdOrder::TwoPass
    } else {
        MrtdOrder::SinglePass
    };
    let mrtd = Ovmf::parse(&bytes)
        .and_then(|fw| tdx::mrtd(&fw, order))
        .with_context(|| format!("computing the TDX MRTD of {}", a.ovmf.display()))?;
    if g.json {
        let entry = TdxEntry {
            ovmf_sha256: hex::encode(Sha256::digest(&bytes)),
            mrtd: mrtd.hex(),
            two_pass: a.two_pass,
        };
        println!("{}", serde_json::to_string_pretty(&entry)?);
    } else {
        println!("{mrtd}");
    }
    Ok(ExitCode::SUCCESS)
}
