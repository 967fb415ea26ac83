//! `nodeimg sign` (filled in by its owner).

use std::process::ExitCode;

use super::Globals;

/// sign (placeholder).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_a: Args, _g: Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nodeimg sign` is not implemented yet")
}
