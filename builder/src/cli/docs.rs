//! `nodeimg completions SHELL` and `nodeimg man DIR`: shell completions and man pages, both
//! generated from the same clap definitions as `--help`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::{Cli, Globals};

/// Print a shell completion script.
///
/// bash: `source <(nodeimg completions bash)`, or save it as
/// /usr/share/bash-completion/completions/nodeimg. zsh: save it as `_nodeimg` in a directory of
/// $fpath. fish: save it as ~/.config/fish/completions/nodeimg.fish.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Write man pages for nodeimg and each of its commands.
///
/// Writes nodeimg.1 and nodeimg-COMMAND.1 (nodeimg-measure-uki.1, …) into DIR, which must
/// exist. Read one with `man -l DIR/nodeimg-build.1`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages into.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run_completions(args: CompletionsArgs, _g: Globals) -> Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "nodeimg", &mut out);
    std::io::stdout()
        .lock()
        .write_all(&out)
        .context("writing the completion script to stdout")?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_man(args: ManArgs, g: Globals) -> Result<ExitCode> {
    let pages = man_pages()?;
    anyhow::ensure!(
        args.dir.is_dir(),
        "{}: not a directory (create it first)",
        args.dir.display()
    );
    for (name, text) in &pages {
        crate::outfile::write(&args.dir.join(name), text, 0o644)?;
    }
    if g.json {
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        println!("{}", serde_json::json!({ "dir": args.dir, "pages": names }));
    } else {
        println!(
            "wrote {} man pages into {}",
            pages.len(),
            args.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every page as (file name, roff text): `nodeimg.1`, then one per command and subcommand.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut pages = Vec::new();
    add_pages(&cmd, "nodeimg", &mut pages)?;
    Ok(pages)
}

fn add_pages(cmd: &clap::Command, name: &str, pages: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut text = Vec::new();
    // clap_mangen titles a page by the command's name: give subcommands their full name.
    let titled = cmd.clone().name(name.to_string());
    clap_mangen::Man::new(titled)
        .render(&mut text)
        .with_context(|| format!("rendering the man page of {name}"))?;
    pages.push((format!("{name}.1"), text));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        add_pages(sub, &format!("{name}-{}", sub.get_name()), pages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_man_page_with_its_options() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "nodeimg.1",
            "nodeimg-build.1",
            "nodeimg-measure-uki.1",
            "nodeimg-completions.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let build = &pages
            .iter()
            .find(|(n, _)| n == "nodeimg-build.1")
            .unwrap()
            .1;
        let build = String::from_utf8_lossy(build);
        assert!(build.starts_with(".ie") || build.contains(".TH"), "{build}");
        assert!(build.contains("cache\\-dir"), "{build}");
    }

    #[test]
    fn command_summaries_are_one_short_line() {
        let cli = Cli::command();
        let measure = cli.find_subcommand("measure").unwrap().clone();
        for sub in cli.get_subcommands().chain(measure.get_subcommands()) {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(
                !about.is_empty() && about.len() <= 80 && !about.contains('\n'),
                "{}: summary {:?} (put details in the long help)",
                sub.get_name(),
                about
            );
        }
    }
}
