//! `nodeimg measure snp` (filled in by its owner).

use std::process::ExitCode;

use crate::cli::Globals;

/// snp launch digest (placeholder).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_a: Args, _g: Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nodeimg measure snp` is not implemented yet")
}
