//! Comparing a booted image's TPM with its manifest: the PCR values nodeimg-init reported
//! against the manifest's `pcrs`, per PCR and bank; on a mismatch the firmware event log is
//! replayed and compared with the manifest's `events` to name the first event that differs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use measurements::eventlog::{first_divergence, EventLog};
use measurements::manifest;
use measurements::pcr::{Bank, Event};
use serde::{Deserialize, Serialize};

use super::eventlog::GuestEventLog;
use super::ObservedPcrs;

/// The parts of a manifest the boot check uses (other fields are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Expected {
    /// Bank → PCR index (decimal string) → hex.
    #[serde(default)]
    pub pcrs: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// The expected events in boot order.
    #[serde(default)]
    pub events: Option<Vec<manifest::Event>>,
}

impl Expected {
    /// Reads `pcrs` and `events` from a manifest.json.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path)
            .with_context(|| format!("reading the manifest {}", path.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("parsing the manifest {}", path.display()))
    }
}

/// One expected PCR value and what the TPM reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PcrRow {
    /// Bank name.
    pub bank: String,
    /// PCR index.
    pub pcr: u32,
    /// From the manifest.
    pub expected: String,
    /// From the guest's NODEIMG-PCRS line, if reported.
    pub observed: Option<String>,
    /// `observed == expected`.
    pub ok: bool,
}

/// The verdict of a boot against its manifest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attestation {
    /// Every expected PCR, in bank then index order.
    pub rows: Vec<PcrRow>,
    /// Why the check failed, one entry per mismatching PCR (naming the first differing event)
    /// or per missing input; empty when every expected PCR matched.
    pub problems: Vec<String>,
}

/// Compares `observed` (and, on a mismatch, `log`) with `expected`.
pub fn attest(
    expected: &Expected,
    observed: Option<&ObservedPcrs>,
    log: Option<&GuestEventLog>,
) -> Attestation {
    let mut a = Attestation::default();
    let Some(pcrs) = expected.pcrs.as_ref().filter(|p| !p.is_empty()) else {
        a.problems
            .push("the manifest has no `pcrs` (built without measurements?)".into());
        return a;
    };
    let Some(observed) = observed else {
        a.problems.push(
            "the guest printed no NODEIMG-PCRS line (no TPM, or nodeimg-init did not get that far)"
                .into(),
        );
        return a;
    };
    for (bank, values) in pcrs {
        for (index, value) in values {
            let Ok(pcr) = index.parse::<u32>() else {
                a.problems.push(format!(
                    "the manifest's pcrs.{bank} has a non-numeric key {index:?}"
                ));
                continue;
            };
            let seen = observed.get(bank, pcr).map(str::to_string);
            let ok = seen.as_deref() == Some(value.as_str());
            a.rows.push(PcrRow {
                bank: bank.clone(),
                pcr,
                expected: value.clone(),
                observed: seen,
                ok,
            });
        }
    }
    a.rows
        .sort_by(|x, y| (&x.bank, x.pcr).cmp(&(&y.bank, y.pcr)));
    let mut failed: BTreeMap<u32, Vec<&PcrRow>> = BTreeMap::new();
    for r in a.rows.iter().filter(|r| !r.ok) {
        failed.entry(r.pcr).or_default().push(r);
    }
    let parsed = log.map(parse_log);
    for (pcr, rows) in failed {
        a.problems
            .push(explain(pcr, &rows, expected, parsed.as_ref()));
    }
    a
}

fn parse_log(log: &GuestEventLog) -> Result<EventLog, String> {
    match log {
        GuestEventLog::Log(bytes) => {
            EventLog::parse(bytes).map_err(|e| format!("the guest's event log is unreadable: {e}"))
        }
        GuestEventLog::Unavailable(why) => Err(format!("the guest sent no event log ({why})")),
    }
}

/// One problem line for a mismatching PCR: values per bank and the first differing event.
fn explain(
    pcr: u32,
    rows: &[&PcrRow],
    expected: &Expected,
    log: Option<&Result<EventLog, String>>,
) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} expected {}, observed {}",
                r.bank,
                r.expected,
                r.observed.as_deref().unwrap_or("(not reported)")
            )
        })
        .collect();
    let head = format!("PCR {pcr} differs ({})", values.join("; "));
    let Some(bank) = rows.iter().find_map(|r| Bank::from_name(&r.bank)) else {
        return format!("{head}; bank {} is not one nodeimg models", rows[0].bank);
    };
    let why = match log {
        None => "no firmware event log on the console (old nodeimg-init?)".to_string(),
        Some(Err(e)) => e.clone(),
        Some(Ok(log)) => divergence(pcr, bank, rows, expected, log),
    };
    format!("{head}; {why}")
}

fn divergence(
    pcr: u32,
    bank: Bank,
    rows: &[&PcrRow],
    expected: &Expected,
    log: &EventLog,
) -> String {
    let events = expected_events(expected.events.as_deref().unwrap_or(&[]));
    let replay_note = match log.replay(bank) {
        Ok(v) => {
            let replayed = v.get(&pcr).copied().unwrap_or(bank.zero());
            let observed = rows
                .iter()
                .find(|r| r.bank == bank.name())
                .and_then(|r| r.observed.clone());
            if observed.as_deref() != Some(replayed.to_hex().as_str()) {
                format!(" (note: the event log replays PCR {pcr} to {replayed}, not to the observed value)")
            } else {
                String::new()
            }
        }
        Err(e) => format!(" (note: {e})"),
    };
    match first_divergence(log, &events, pcr, bank) {
        Some(d) => format!("first difference: {}{replay_note}", d.describe(pcr, bank)),
        None => format!("the logged events of PCR {pcr} equal the manifest's `events`, so its `pcrs` and `events` disagree{replay_note}"),
    }
}

/// The manifest's events in the models' types.
pub(crate) fn expected_events(events: &[manifest::Event]) -> Vec<Event> {
    manifest::Event::to_pcr_events(events)
}

#[cfg(test)]
mod tests;
