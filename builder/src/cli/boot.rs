//! `nodeimg boot` (filled in by its owner).

use std::process::ExitCode;

use super::Globals;

/// boot (placeholder).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _g: Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nodeimg boot` is not implemented yet")
}
