//! `nodeimg diff A B`: are two builds the same? Exit 0 identical, 1 different, 2 when the
//! inputs cannot be compared (like diff(1)); clap's usage errors also exit 2.

use std::path::PathBuf;
use std::process::ExitCode;

use super::Globals;
use crate::diff::{self, Options};

/// Compare two disk images or build output directories.
///
/// Compares GPT, ESP files, UKI sections, dm-verity, the erofs file tree (and uki.efi,
/// manifest.json for directories) and names the first differences per component. Exit 0 when
/// identical, 1 when different.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// First disk image (disk.raw) or `nodeimg build` output directory.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// Second disk image or output directory.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Differences listed per component (0 = all); the count is always complete.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max: usize,
}

pub fn run(args: Args, g: Globals) -> anyhow::Result<ExitCode> {
    let report = match diff::compare(&args.a, &args.b, &Options { limit: args.max }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: comparing {} and {}: {e:#}",
                args.a.display(),
                args.b.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", diff::render(&report));
    }
    Ok(if report.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
