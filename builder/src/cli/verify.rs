//! `nodeimg verify` (filled in by its owner).

use std::process::ExitCode;

use super::Globals;

/// verify (placeholder).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_a: Args, _g: Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nodeimg verify` is not implemented yet")
}
