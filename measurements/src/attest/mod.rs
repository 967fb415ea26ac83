//! Verifying a node's hardware-signed evidence against a signed manifest: does this node run
//! exactly the image the manifest describes?
//!
//! The entry point an attestation service links is [`verify_tpm_quote`]: evidence bytes (a TPM
//! quote, its signature, the attestation key, the verifier's nonce, optionally the firmware's
//! event log) and a manifest **whose signature the caller has already verified** (`nodeimg
//! verify` does that first) in, one [`Check`] per property out. The evidence is accepted only
//! if no check failed. Nothing here trusts the attestation key: binding the AK to a real TPM
//! (EK certificate, `TPM2_ActivateCredential`, a cloud's AK registry) is the caller's policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::eventlog::{first_divergence, EventLog};
use crate::manifest::{Event as ManifestEvent, Manifest};

/// What a quote is compared with: the manifest's `pcrs` and `events` (other fields of the
/// JSON are ignored, so any `nodeimg.manifest/v1` document deserializes into it).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReferenceValues {
    /// Bank → PCR index (decimal string) → hex.
    #[serde(default)]
    pub pcrs: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// The expected events, in order.
    #[serde(default)]
    pub events: Option<Vec<ManifestEvent>>,
}

impl From<&Manifest> for ReferenceValues {
    fn from(m: &Manifest) -> Self {
        ReferenceValues {
            pcrs: m.pcrs.clone(),
            events: m.events.clone(),
        }
    }
}
use crate::pcr::{Bank, Digest};

pub mod snp;
pub mod snp_id;
pub mod tpm;

pub use snp::{verify_snp_report, SnpEvidence, SnpReference};
pub use snp_id::{verify_id_block, IdBlockEvidence};
pub use tpm::{AkKey, Quote, QuoteError, QuoteSignature, Selection};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

/// One property of the evidence, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `quote`, `quote-signature`, `quote-nonce`, `quote-selection`, `quote-event-log`,
    /// `quote-pcrs`.
    pub check: &'static str,
    pub status: Status,
    /// What was checked, or what differed.
    pub detail: String,
}

/// Checks, in order; later ones are skipped once one that they depend on failed.
#[derive(Debug, Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, check: &'static str, status: Status, detail: impl Into<String>) {
        self.0.push(Check {
            check,
            status,
            detail: detail.into(),
        });
    }

    fn result<T>(&mut self, check: &'static str, r: Result<(T, String), String>) -> Option<T> {
        match r {
            Ok((v, detail)) => {
                self.push(check, Status::Ok, detail);
                Some(v)
            }
            Err(why) => {
                self.push(check, Status::Failed, why);
                None
            }
        }
    }

    fn skip_rest(&mut self, names: &[&'static str], why: &str) {
        for n in names {
            if !self.0.iter().any(|c| c.check == *n) {
                self.push(n, Status::Skipped, why);
            }
        }
    }
}

/// A TPM quote as `tpm2_quote -m MSG -s SIG` writes it, with the attestation key and the
/// nonce the verifier sent.
#[derive(Debug, Clone, Copy)]
pub struct TpmEvidence<'a> {
    /// The marshalled `TPMS_ATTEST`.
    pub attest: &'a [u8],
    /// The marshalled `TPMT_SIGNATURE`.
    pub signature: &'a [u8],
    /// The attestation key, SubjectPublicKeyInfo DER.
    pub ak_spki_der: &'a [u8],
    /// The nonce the verifier sent (the quote's qualifying data).
    pub nonce: &'a [u8],
    /// The TCG2 event log the node sent with the quote, if any.
    pub event_log: Option<&'a [u8]>,
}

const QUOTE_CHECKS: [&str; 6] = [
    "quote",
    "quote-signature",
    "quote-nonce",
    "quote-selection",
    "quote-event-log",
    "quote-pcrs",
];

/// Every check of a TPM quote against a (verified) manifest. The quote is accepted only if
/// none failed.
///
/// * `quote`: a `TPMS_ATTEST` made by a TPM (magic), of type quote, parsed in full.
/// * `quote-signature`: the `TPMT_SIGNATURE` verifies over it with the AK (RSASSA, RSAPSS,
///   ECDSA; SHA-256 or SHA-384).
/// * `quote-nonce`: the qualifying data is the verifier's nonce (freshness).
/// * `quote-selection`: for every bank both the quote and the manifest have, the quote covers
///   every PCR the manifest pins; at least one such bank.
/// * `quote-event-log` (with a log): the log replays to exactly the quoted PCR digest.
/// * `quote-pcrs`: the quoted values are the manifest's: without a log the quoted digest must
///   equal the digest of the manifest's values (then only pinned PCRs may be quoted); with a
///   log, the replayed pinned PCRs must equal the manifest's, and the first event that departs
///   from the manifest's `events` is named.
pub fn verify_tpm_quote(e: &TpmEvidence<'_>, manifest: &ReferenceValues) -> Vec<Check> {
    let mut c = Checks::default();
    let quote = c.result(
        "quote",
        Quote::parse(e.attest)
            .map(|q| {
                let d = format!(
                    "TPMS_ATTEST quote of {} (TPM clock {} ms, resets {}, restarts {}, firmware {:#x})",
                    q.selections
                        .iter()
                        .map(Selection::describe)
                        .collect::<Vec<_>>()
                        .join(" "),
                    q.clock,
                    q.reset_count,
                    q.restart_count,
                    q.firmware_version
                );
                (q, d)
            })
            .map_err(|x| x.to_string()),
    );
    let Some(quote) = quote else {
        c.skip_rest(&QUOTE_CHECKS, "not checked: the quote could not be read");
        return c.0;
    };
    let sig = c.result(
        "quote-signature",
        QuoteSignature::parse(e.signature)
            .and_then(|s| {
                let key = AkKey::from_spki_der(e.ak_spki_der)?;
                s.verify(e.attest, e.ak_spki_der)?;
                let d = format!("{} by {} attestation key", s.scheme(), key.describe());
                Ok((s, d))
            })
            .map_err(|x| x.to_string()),
    );
    let Some(sig) = sig else {
        c.skip_rest(
            &QUOTE_CHECKS,
            "not checked: nothing in a quote is trusted before its signature verified",
        );
        return c.0;
    };
    if quote.extra_data == e.nonce {
        c.push(
            "quote-nonce",
            Status::Ok,
            format!("qualifying data is the nonce {}", hex::encode(e.nonce)),
        );
    } else {
        c.push(
            "quote-nonce",
            Status::Failed,
            format!(
                "the quote's qualifying data is {}, the nonce sent was {}: a replayed or \
                 foreign quote",
                hex_or_empty(&quote.extra_data),
                hex_or_empty(e.nonce)
            ),
        );
    }
    let pinned = pinned_pcrs(manifest);
    let selection = c.result("quote-selection", check_selection(&quote, &pinned));
    let Some(banks) = selection else {
        c.skip_rest(
            &QUOTE_CHECKS,
            "not checked: the quote does not cover the pinned PCRs",
        );
        return c.0;
    };
    let hash = Bank::from_alg_id(sig.hash()).unwrap_or(Bank::Sha256);
    match e.event_log {
        None => {
            c.push(
                "quote-event-log",
                Status::Skipped,
                "no event log given: the quoted digest is compared with the manifest's values",
            );
            c.result(
                "quote-pcrs",
                pcrs_without_log(&quote, hash, &pinned, &banks),
            );
        }
        Some(log) => {
            let replayed = c.result("quote-event-log", log_matches_quote(log, &quote, hash));
            match replayed {
                Some((log, values)) => {
                    c.result(
                        "quote-pcrs",
                        pcrs_from_log(&log, &values, &pinned, &banks, manifest),
                    );
                }
                None => c.skip_rest(
                    &QUOTE_CHECKS,
                    "not checked: the event log is not the one the quote covers",
                ),
            }
        }
    }
    c.0
}

fn hex_or_empty(b: &[u8]) -> String {
    if b.is_empty() {
        "empty".into()
    } else {
        hex::encode(b)
    }
}

/// Bank → PCR → value the manifest pins (banks and values nodeimg cannot read are dropped).
fn pinned_pcrs(manifest: &ReferenceValues) -> BTreeMap<Bank, BTreeMap<u32, Digest>> {
    let mut out: BTreeMap<Bank, BTreeMap<u32, Digest>> = BTreeMap::new();
    for (bank, values) in manifest.pcrs.iter().flatten() {
        let Some(bank) = Bank::from_name(bank) else {
            continue;
        };
        for (pcr, hex) in values {
            if let (Ok(pcr), Some(d)) = (pcr.parse::<u32>(), Digest::from_hex(bank, hex)) {
                out.entry(bank).or_default().insert(pcr, d);
            }
        }
    }
    out
}

/// The banks to compare: those both the quote and the manifest have, each fully covered.
fn check_selection(
    quote: &Quote,
    pinned: &BTreeMap<Bank, BTreeMap<u32, Digest>>,
) -> Result<(Vec<Bank>, String), String> {
    if pinned.is_empty() {
        return Err("the manifest pins no PCR values".into());
    }
    let mut banks = Vec::new();
    for s in &quote.selections {
        let Some(bank) = s.bank() else { continue };
        let Some(want) = pinned.get(&bank) else {
            continue;
        };
        let missing: Vec<String> = want
            .keys()
            .filter(|p| !s.pcrs.contains(p))
            .map(u32::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the quote selects {} but the manifest also pins {} PCR {}",
                s.describe(),
                bank,
                missing.join(", ")
            ));
        }
        banks.push(bank);
    }
    if banks.is_empty() {
        let quoted: Vec<String> = quote.selections.iter().map(Selection::describe).collect();
        let pinned: Vec<&str> = pinned.keys().map(|b| b.name()).collect();
        return Err(format!(
            "the quote selects {} and the manifest pins {}: no bank in common",
            if quoted.is_empty() {
                "nothing".into()
            } else {
                quoted.join(" ")
            },
            pinned.join(", ")
        ));
    }
    let names: Vec<&str> = banks.iter().map(|b| b.name()).collect();
    Ok((
        banks.clone(),
        format!("covers every pinned PCR of {}", names.join(", ")),
    ))
}

fn pcrs_without_log(
    quote: &Quote,
    hash: Bank,
    pinned: &BTreeMap<Bank, BTreeMap<u32, Digest>>,
    banks: &[Bank],
) -> Result<((), String), String> {
    let values: BTreeMap<(Bank, u32), Digest> = pinned
        .iter()
        .flat_map(|(b, m)| m.iter().map(move |(p, d)| ((*b, *p), *d)))
        .collect();
    let want = quote
        .expected_digest(hash, &values)
        .map_err(|(bank, pcr)| {
            format!(
                "the quote includes {bank} PCR {pcr}, which the manifest does not pin (a \
             platform-dependent register): give the node's event log to account for it, or quote \
             only the pinned PCRs"
            )
        })?;
    if want != quote.pcr_digest {
        return Err(format!(
            "the quoted PCR digest {} is not the {} digest of the manifest's values {} for {}: \
             at least one quoted PCR holds another value (give the event log to name the event)",
            hex::encode(&quote.pcr_digest),
            hash,
            hex::encode(&want),
            quote
                .selections
                .iter()
                .map(Selection::describe)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let names: Vec<&str> = banks.iter().map(|b| b.name()).collect();
    Ok((
        (),
        format!(
            "the quoted PCRs hold the manifest's values ({})",
            names.join(", ")
        ),
    ))
}

type Replayed = (EventLog, BTreeMap<(Bank, u32), Digest>);

fn log_matches_quote(log: &[u8], quote: &Quote, hash: Bank) -> Result<(Replayed, String), String> {
    let log = EventLog::parse(log).map_err(|e| format!("parsing the event log: {e}"))?;
    let mut values = BTreeMap::new();
    for s in &quote.selections {
        let Some(bank) = s.bank() else {
            return Err(format!(
                "the quote selects the {} bank, which nodeimg does not replay",
                tpm::alg_name(s.alg)
            ));
        };
        let replayed = log
            .replay(bank)
            .map_err(|e| format!("replaying the event log: {e}"))?;
        for pcr in &s.pcrs {
            values.insert(
                (bank, *pcr),
                replayed.get(pcr).copied().unwrap_or(bank.zero()),
            );
        }
    }
    let want = quote
        .expected_digest(hash, &values)
        .map_err(|(b, p)| format!("{b} PCR {p}: no value"))?;
    if want != quote.pcr_digest {
        return Err(format!(
            "the event log ({} events) replays to PCR digest {}, the quote signs {}: the log is \
             not the one of this boot (or was edited)",
            log.events.len(),
            hex::encode(want),
            hex::encode(&quote.pcr_digest)
        ));
    }
    let n = log.events.len();
    Ok((
        (log, values),
        format!("the event log ({n} events) replays to the quoted PCR digest"),
    ))
}

fn pcrs_from_log(
    log: &EventLog,
    values: &BTreeMap<(Bank, u32), Digest>,
    pinned: &BTreeMap<Bank, BTreeMap<u32, Digest>>,
    banks: &[Bank],
    manifest: &ReferenceValues,
) -> Result<((), String), String> {
    let expected = ManifestEvent::to_pcr_events(manifest.events.as_deref().unwrap_or(&[]));
    let mut n = 0;
    for bank in banks {
        for (pcr, want) in pinned.get(bank).into_iter().flatten() {
            let got = values.get(&(*bank, *pcr)).copied().unwrap_or(bank.zero());
            if got != *want {
                let why = first_divergence(log, &expected, *pcr, *bank).map_or_else(
                    || "its events equal the manifest's `events`".to_string(),
                    |d| d.describe(*pcr, *bank),
                );
                return Err(format!(
                    "{bank} PCR {pcr} is {} on the node, the manifest pins {}; first difference: {why}",
                    got.to_hex(),
                    want.to_hex()
                ));
            }
            n += 1;
        }
    }
    Ok((
        (),
        format!("all {n} pinned PCR values equal the manifest's"),
    ))
}

#[cfg(test)]
mod tests;
