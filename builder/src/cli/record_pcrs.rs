//! `nodeimg record-pcrs --platform P (--pcrs FILE | --event-log LOG) [-o FILE]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use measurements::platforms::{self, Recorded, Source};

use super::Globals;

/// Record a platform's firmware PCRs from a real boot, for the next manifest.
///
/// Takes the PCRs a machine of the platform reported (a `{"sha256":{"0":"…"}}` file, or
/// `nodeimg boot --json` output) or its TCG2 event log (replayed), keeps the registers that only
/// a boot of that platform shows (PCR 0, 1, 5 … as `docs/measurements.md` lists per platform),
/// and writes them as JSON. List the file in `[measurements] platform-values` and the next
/// build's manifest pins them under `platforms.<name>`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["pcrs", "event_log"])))]
pub struct Args {
    /// The platform: qemu-ovmf, aws-nitrotpm, gcp or azure.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: String,
    /// Observed PCR values (JSON).
    #[arg(long, value_name = "FILE")]
    pub pcrs: Option<PathBuf>,
    /// A binary TCG2 event log from the platform (replayed in both banks).
    #[arg(long, value_name = "LOG")]
    pub event_log: Option<PathBuf>,
    /// Where to write [default: stdout].
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
}

pub fn run(a: Args, _g: Globals) -> Result<ExitCode> {
    let platform = platforms::by_name(&a.platform).with_context(|| {
        let names: Vec<&str> = platforms::ALL.iter().map(|p| p.name).collect();
        format!(
            "unknown platform `{}`; one of {}",
            a.platform,
            names.join(", ")
        )
    })?;
    let observed: BTreeMap<String, BTreeMap<u32, String>> = match (&a.pcrs, &a.event_log) {
        (Some(p), _) => {
            let text = crate::infile::read_capped(p, crate::infile::PCRS_MAX, "PCR file")?;
            let v: serde_json::Value = serde_json::from_slice(&text)
                .with_context(|| format!("{}: not JSON", p.display()))?;
            let obj = v.get("pcrs").unwrap_or(&v);
            crate::qemu::ObservedPcrs::parse_json(&obj.to_string())
                .with_context(|| format!("--pcrs {}", p.display()))?
                .0
        }
        (None, Some(l)) => {
            let bytes = crate::infile::read_capped(l, crate::infile::EVENT_LOG_MAX, "event log")?;
            let log = measurements::eventlog::EventLog::parse(&bytes)
                .with_context(|| format!("parsing {}", l.display()))?;
            let mut out = BTreeMap::new();
            for bank in measurements::pcr::Bank::ALL {
                if let Ok(values) = log.replay(bank) {
                    out.insert(
                        bank.name().to_string(),
                        values.into_iter().map(|(k, v)| (k, v.to_hex())).collect(),
                    );
                }
            }
            out
        }
        (None, None) => unreachable!("clap: --pcrs or --event-log"),
    };
    let wanted: Vec<u32> = platform
        .rules
        .iter()
        .filter(|r| r.source == Source::Recorded)
        .map(|r| r.pcr)
        .collect();
    let mut pcrs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (bank, values) in &observed {
        if measurements::pcr::Bank::from_name(bank).is_none() {
            continue;
        }
        for pcr in &wanted {
            if let Some(v) = values.get(pcr) {
                pcrs.entry(bank.clone())
                    .or_default()
                    .insert(pcr.to_string(), v.clone());
            }
        }
    }
    if pcrs.is_empty() {
        bail!(
            "none of {}'s platform PCRs ({}) is in the input",
            platform.name,
            wanted
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let rec = Recorded {
        platform: platform.name.to_string(),
        pcrs,
    };
    let mut text = serde_json::to_string_pretty(&rec)?;
    text.push('\n');
    crate::outfile::write(&a.output, text.as_bytes(), 0o644)?;
    Ok(ExitCode::SUCCESS)
}
