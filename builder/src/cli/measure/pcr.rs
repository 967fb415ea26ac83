//! `nodeimg measure uki UKI` and `nodeimg measure disk DISK` (filled in by its owner).

use std::process::ExitCode;

use crate::cli::Globals;

/// PCR 4/9/11/12/13 and boot phases for a UKI file.
#[derive(Debug, clap::Args)]
pub struct UkiArgs {}

/// The same, reading the UKI out of a disk image's ESP.
#[derive(Debug, clap::Args)]
pub struct DiskArgs {}

pub fn run_uki(_a: UkiArgs, _g: Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nodeimg measure uki` is not implemented yet")
}

pub fn run_disk(_a: DiskArgs, _g: Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`nodeimg measure disk` is not implemented yet")
}
