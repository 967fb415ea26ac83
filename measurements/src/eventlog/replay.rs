//! Replaying a log into PCR values, and finding where it departs from an expected event list.

use std::collections::BTreeMap;

use thiserror::Error;

use super::{EventLog, LogEvent};
use crate::pcr::{Bank, Digest, Event, EventType};

/// Data of the `EV_NO_ACTION` event that sets PCR 0's starting locality.
const STARTUP_LOCALITY: &[u8; 16] = b"StartupLocality\0";

/// Why a log cannot be replayed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReplayError {
    /// An extending event lacks a digest for the bank.
    #[error("event {number} (PCR {pcr}, {event_type}, offset {offset:#x}) has no {bank} digest")]
    MissingDigest {
        /// Event number.
        number: usize,
        /// Its offset in the log.
        offset: usize,
        /// Its PCR.
        pcr: u32,
        /// Its type.
        event_type: EventType,
        /// The bank.
        bank: Bank,
    },
}

impl EventLog {
    /// PCR values after replaying every extending event of `bank` from the reset state (PCR 0
    /// starting at the locality a `StartupLocality` event names).
    pub fn replay(&self, bank: Bank) -> Result<BTreeMap<u32, Digest>, ReplayError> {
        let mut pcrs: BTreeMap<u32, Digest> = BTreeMap::new();
        if let Some(locality) = self.startup_locality() {
            let mut v = vec![0u8; bank.digest_len()];
            if let Some(last) = v.last_mut() {
                *last = locality;
            }
            if let Some(d) = Digest::from_slice(bank, &v) {
                pcrs.insert(0, d);
            }
        }
        for e in self
            .events
            .iter()
            .filter(|e| e.event_type != EventType::NO_ACTION)
        {
            let d = e.digest(bank).ok_or(ReplayError::MissingDigest {
                number: e.number,
                offset: e.offset,
                pcr: e.pcr,
                event_type: e.event_type,
                bank,
            })?;
            let v = pcrs.entry(e.pcr).or_insert_with(|| bank.zero());
            *v = v.extend(&d);
        }
        Ok(pcrs)
    }

    fn startup_locality(&self) -> Option<u8> {
        self.events
            .iter()
            .find(|e| {
                e.pcr == 0
                    && e.event_type == EventType::NO_ACTION
                    && e.data.starts_with(STARTUP_LOCALITY)
            })
            .and_then(|e| e.data.get(16).copied())
    }
}

/// Where a PCR's logged events first differ from the expected ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// The `index`-th event of the PCR differs (digest or type).
    Differs {
        /// Position among the PCR's events (0-based).
        index: usize,
        /// What was expected there.
        expected: Event,
        /// What the log has there.
        logged: LogEvent,
    },
    /// The log ends before an expected event.
    Missing {
        /// Position among the PCR's events.
        index: usize,
        /// The expected event.
        expected: Event,
    },
    /// The log has an event after all expected ones.
    Extra {
        /// Position among the PCR's events.
        index: usize,
        /// The logged event.
        logged: LogEvent,
    },
}

/// Compares the events of `pcr` in `log` with `expected` (all PCRs; others are ignored) in
/// `bank`; `None` when they agree one to one.
pub fn first_divergence(
    log: &EventLog,
    expected: &[Event],
    pcr: u32,
    bank: Bank,
) -> Option<Divergence> {
    let mut want = expected.iter().filter(|e| e.pcr == pcr);
    let mut got = log.measurements(pcr);
    for index in 0.. {
        match (want.next(), got.next()) {
            (None, None) => return None,
            (Some(e), None) => {
                return Some(Divergence::Missing {
                    index,
                    expected: e.clone(),
                })
            }
            (None, Some(l)) => {
                return Some(Divergence::Extra {
                    index,
                    logged: l.clone(),
                })
            }
            (Some(e), Some(l)) => {
                if e.event_type != l.event_type || e.digests.get(&bank) != l.digest(bank).as_ref() {
                    return Some(Divergence::Differs {
                        index,
                        expected: e.clone(),
                        logged: l.clone(),
                    });
                }
            }
        }
    }
    None
}

impl Divergence {
    /// A message naming the event, e.g. `PCR 11 event 6 (.cmdline section contents): expected
    /// sha256 …, the log has EV_IPL … ".cmdline"`.
    pub fn describe(&self, pcr: u32, bank: Bank) -> String {
        self.describe_register(&format!("PCR {pcr}"), bank)
    }

    /// The same, naming the register `register` (e.g. `RTMR 1`).
    pub fn describe_register(&self, register: &str, bank: Bank) -> String {
        let digest = |d: Option<&Digest>| d.map_or("(none)".to_string(), Digest::to_hex);
        match self {
            Divergence::Differs { index, expected, logged } => format!(
                "{register} event {} ({}): expected {} {} {}, the log has {} {} {} (event {} at offset {:#x}: {})",
                index + 1,
                expected.description,
                expected.event_type,
                bank,
                digest(expected.digests.get(&bank)),
                logged.event_type,
                bank,
                digest(logged.digest(bank).as_ref()),
                logged.number,
                logged.offset,
                logged.summary()
            ),
            Divergence::Missing { index, expected } => format!(
                "{register} event {} ({}, {} {} {}) is missing from the log",
                index + 1,
                expected.description,
                expected.event_type,
                bank,
                digest(expected.digests.get(&bank))
            ),
            Divergence::Extra { index, logged } => format!(
                "{register} event {} is not expected: the log has {} {} {} (event {} at offset {:#x}: {})",
                index + 1,
                logged.event_type,
                bank,
                digest(logged.digest(bank).as_ref()),
                logged.number,
                logged.offset,
                logged.summary()
            ),
        }
    }
}
