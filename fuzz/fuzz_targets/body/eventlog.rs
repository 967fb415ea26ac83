//! Body of the `eventlog` fuzz target, shared with the stable replay test
//! `measurements/tests/fuzz_corpus_eventlog.rs` (included there by path): the TCG2 (crypto
//! agile) event log parser of `measurements::eventlog`, replay into both banks, event
//! summaries and the divergence report. Errors are fine; a panic is a bug.

use measurements::pcr::Bank;

/// Parses `data` as an event log and runs everything that reads the parsed log.
pub fn run(data: &[u8]) {
    let Ok(log) = measurements::eventlog::EventLog::parse(data) else {
        return;
    };
    for event in &log.events {
        let _ = event.summary();
        for bank in Bank::ALL {
            let _ = event.digest(bank);
        }
    }
    for bank in Bank::ALL {
        let _ = log.replay(bank);
        for pcr in [0, 4, 7, 9, 11, 12, 13] {
            let _ = log.measurements(pcr).count();
            if let Some(d) = measurements::eventlog::first_divergence(&log, &[], pcr, bank) {
                let _ = d.describe(pcr, bank);
            }
        }
    }
}
