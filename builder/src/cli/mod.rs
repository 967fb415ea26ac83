//! Command-line interface: one module per subcommand, each with an `Args` struct (its doc
//! comments are the help) and a `run` function.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod boot;
pub mod build;
pub mod convert;
pub mod diff;
pub mod docs;
pub mod inspect;
pub mod keygen;
pub mod measure;
pub mod record_pcrs;
pub mod sign;
pub mod sign_uki;
pub mod verify;
pub mod verify_bundle;

/// `nodeimg --version`: the version and the digest of the embedded nodeimg-init, which is part
/// of every image this binary builds (a rebuild must use the same init to be byte-identical).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (nodeimg-init sha256:",
    env!("NODEIMG_INIT_SHA256"),
    ")"
);

/// Build measured, immutable node OS images.
#[derive(Debug, Parser)]
#[command(name = "nodeimg", version = VERSION, about)]
pub struct Cli {
    /// Print one JSON document on stdout instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More diagnostics on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Build(build::Args),
    Convert(convert::Args),
    Measure(measure::Args),
    Keygen(keygen::Args),
    Sign(sign::Args),
    SignUki(sign_uki::Args),
    Verify(verify::Args),
    VerifyBundle(verify_bundle::Args),
    RecordPcrs(record_pcrs::Args),
    Boot(boot::Args),
    Inspect(inspect::Args),
    Diff(diff::Args),
    Completions(docs::CompletionsArgs),
    Man(docs::ManArgs),
}

/// Global options every subcommand sees.
#[derive(Debug, Clone, Copy)]
pub struct Globals {
    pub json: bool,
}

/// Runs the parsed command line. `Ok(code)` is the process exit code (0 success, 1 failure).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = Globals { json: cli.json };
    match cli.command {
        Command::Build(a) => build::run(a, g),
        Command::Convert(a) => convert::run(a, g),
        Command::Inspect(a) => inspect::run(a, g),
        Command::Diff(a) => diff::run(a, g),
        Command::Boot(a) => boot::run(a, g),
        Command::Measure(a) => measure::run(a, g),
        Command::Keygen(a) => keygen::run(a, g),
        Command::Sign(a) => sign::run(a, g),
        Command::SignUki(a) => sign_uki::run(a, g),
        Command::Verify(a) => verify::run(a, g),
        Command::VerifyBundle(a) => verify_bundle::run(a, g),
        Command::RecordPcrs(a) => record_pcrs::run(a, g),
        Command::Completions(a) => docs::run_completions(a, g),
        Command::Man(a) => docs::run_man(a, g),
    }
}
