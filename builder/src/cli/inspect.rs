//! `nodeimg inspect` (filled in by its owner).

use std::process::ExitCode;

use super::Globals;

/// inspect (placeholder).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _g: Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nodeimg inspect` is not implemented yet")
}
