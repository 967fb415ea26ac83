//! `nodeimg measure uki|disk|snp|tdx`: what a verifier will see, computed offline.

use std::process::ExitCode;

use clap::Subcommand;

use super::Globals;

mod pcr;
mod snp;
mod tdx;

/// Compute expected measurements (TPM PCRs, SEV-SNP, TDX).
///
/// TPM PCRs of a UKI or a disk image, SEV / SEV-ES / SEV-SNP launch digests, TDX MRTDs.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Subcommand)]
pub enum What {
    Uki(pcr::UkiArgs),
    Disk(pcr::DiskArgs),
    Snp(snp::Args),
    Tdx(tdx::Args),
}

pub fn run(args: Args, g: Globals) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Uki(a) => pcr::run_uki(a, g),
        What::Disk(a) => pcr::run_disk(a, g),
        What::Snp(a) => snp::run(a, g),
        What::Tdx(a) => tdx::run(a, g),
    }
}
