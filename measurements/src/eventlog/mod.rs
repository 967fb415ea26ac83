//! The TCG PC Client crypto-agile event log, as Linux exposes the firmware's log in
//! `/sys/kernel/security/tpm0/binary_bios_measurements` (`uki-pcr-verity.md` §3): parsing,
//! replaying it into PCR values, and comparing it with an expected event list.
//!
//! Layout: a SHA-1-format `TCG_PCClientPCREvent` carrying the `Spec ID Event03` header (which
//! lists every algorithm's digest size), then `TCG_PCR_EVENT2` records: `u32 pcrIndex; u32
//! eventType; u32 digestCount; {u16 algId; u8 digest[size]}[count]; u32 eventSize; u8 event[]`.
//! All integers little-endian. The parser checks every size against the data and never panics.

use thiserror::Error;

use crate::pcr::{Bank, Digest, EventType};

mod describe;
mod replay;

pub use replay::{first_divergence, Divergence, ReplayError};

/// The signature at the start of the Spec ID event's data.
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// Size of the SHA-1 digest in the first (legacy-format) event.
const SHA1_LEN: usize = 20;
/// Events larger than this are refused (real events are at most a few KiB).
const MAX_EVENT_SIZE: u32 = 16 << 20;
/// At most this many digests per event.
const MAX_DIGESTS: u32 = 16;

/// Why an event log could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EventLogError {
    /// A field runs past the end of the log.
    #[error("event log: {what} at offset {offset:#x} ({len} bytes) runs past the end ({total:#x} bytes)")]
    Truncated {
        /// The field.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// How many bytes it needs.
        len: usize,
        /// The log size.
        total: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("event log: {what} at offset {offset:#x}: expected {expected}, found {found}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Where it is.
        offset: usize,
        /// What the format requires.
        expected: String,
        /// What the log holds.
        found: String,
    },
}

/// One algorithm the log carries digests for (from the Spec ID event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithm {
    /// `TPM_ALG_ID`.
    pub id: u16,
    /// Digest size in bytes.
    pub size: u16,
}

/// One logged measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Position in the log (0 is the Spec ID event).
    pub number: usize,
    /// File offset of the record.
    pub offset: usize,
    /// The PCR it extends.
    pub pcr: u32,
    /// Its type.
    pub event_type: EventType,
    /// `(algorithm id, digest)` for every bank the event was extended into.
    pub digests: Vec<(u16, Vec<u8>)>,
    /// The event data (descriptive; usually not what was hashed).
    pub data: Vec<u8>,
}

impl LogEvent {
    /// The digest this event extended into `bank`, if the log has it.
    pub fn digest(&self, bank: Bank) -> Option<Digest> {
        self.digests
            .iter()
            .find(|(id, _)| *id == bank.alg_id())
            .and_then(|(_, d)| Digest::from_slice(bank, d))
    }

    /// A one-line summary of the event data, for people.
    pub fn summary(&self) -> String {
        describe::summary(self)
    }
}

/// A parsed event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    /// The algorithms of the crypto-agile records.
    pub algorithms: Vec<Algorithm>,
    /// Every record after the Spec ID event, in log order (including `EV_NO_ACTION` ones).
    pub events: Vec<LogEvent>,
}

/// Bounds-checked little-endian reads.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], EventLogError> {
        let out = self
            .pos
            .checked_add(len)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or(EventLogError::Truncated {
                what,
                offset: self.pos,
                len,
                total: self.data.len(),
            })?;
        self.pos += len;
        Ok(out)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, EventLogError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, EventLogError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn rest_is_zero(&self) -> bool {
        self.data
            .get(self.pos..)
            .is_some_and(|r| r.iter().all(|&b| b == 0))
    }
}

fn invalid(what: &'static str, offset: usize, expected: &str, found: String) -> EventLogError {
    EventLogError::Invalid {
        what,
        offset,
        expected: expected.to_string(),
        found,
    }
}

impl EventLog {
    /// Parses a crypto-agile event log. Zero bytes after the last record are ignored (some
    /// firmware hands over a zero-padded buffer).
    pub fn parse(data: &[u8]) -> Result<EventLog, EventLogError> {
        Self::parse_with(data, &[0])
    }

    /// Parses a TDX CC event log (ACPI `CCEL`): the same format, SHA-384 digests, the CC MR
    /// index (1 = RTMR0 … 4 = RTMR3) in the PCR field, and a Spec ID event that TDVF logs
    /// with index 1 (edk2 `SetupCcEventLog`: "PCRIndex 0 maps to MrIndex 1").
    pub fn parse_cc(data: &[u8]) -> Result<EventLog, EventLogError> {
        Self::parse_with(data, &[0, 1])
    }

    fn parse_with(data: &[u8], header_index: &[u32]) -> Result<EventLog, EventLogError> {
        let mut c = Cursor { data, pos: 0 };
        let algorithms = parse_spec_id(&mut c, header_index)?;
        let mut events = Vec::new();
        while c.pos < data.len() && !c.rest_is_zero() {
            let number = events.len() + 1;
            events.push(parse_event2(&mut c, &algorithms, number)?);
        }
        Ok(EventLog { algorithms, events })
    }

    /// The events that extend a PCR (every type but `EV_NO_ACTION`) of `pcr`, in order.
    pub fn measurements(&self, pcr: u32) -> impl Iterator<Item = &LogEvent> {
        self.events
            .iter()
            .filter(move |e| e.pcr == pcr && e.event_type != EventType::NO_ACTION)
    }
}

/// The first record: SHA-1 format, `EV_NO_ACTION`, data = the Spec ID event.
fn parse_spec_id(
    c: &mut Cursor<'_>,
    header_index: &[u32],
) -> Result<Vec<Algorithm>, EventLogError> {
    let start = c.pos;
    let pcr = c.u32("first event pcrIndex")?;
    let t = c.u32("first event eventType")?;
    if !header_index.contains(&pcr) || t != EventType::NO_ACTION.0 {
        let found = format!("PCR {pcr}, type {}", EventType(t));
        return Err(invalid(
            "first event",
            start,
            "PCR 0, EV_NO_ACTION (Spec ID event)",
            found,
        ));
    }
    c.bytes(SHA1_LEN, "first event digest")?;
    let size = c.u32("first event eventDataSize")? as usize;
    let body_at = c.pos;
    let body = c.bytes(size, "Spec ID event")?;
    let mut b = Cursor { data: body, pos: 0 };
    let sig = b.bytes(16, "Spec ID signature")?;
    if sig != SPEC_ID_SIGNATURE {
        let found = format!("{:?}", String::from_utf8_lossy(sig));
        return Err(invalid(
            "Spec ID signature",
            body_at,
            "\"Spec ID Event03\" (crypto-agile log)",
            found,
        ));
    }
    b.u32("platformClass")?;
    b.bytes(4, "spec version and uintnSize")?;
    let n = b.u32("numberOfAlgorithms")?;
    if n == 0 || n > MAX_DIGESTS {
        return Err(invalid(
            "numberOfAlgorithms",
            body_at + 24,
            "1 to 16",
            n.to_string(),
        ));
    }
    (0..n)
        .map(|_| {
            Ok(Algorithm {
                id: b.u16("algorithmId")?,
                size: b.u16("digestSize")?,
            })
        })
        .collect()
}

fn parse_event2(
    c: &mut Cursor<'_>,
    algorithms: &[Algorithm],
    number: usize,
) -> Result<LogEvent, EventLogError> {
    let offset = c.pos;
    let pcr = c.u32("pcrIndex")?;
    let event_type = EventType(c.u32("eventType")?);
    let count = c.u32("digest count")?;
    if count > MAX_DIGESTS {
        return Err(invalid(
            "digest count",
            offset + 8,
            "at most 16",
            count.to_string(),
        ));
    }
    let mut digests = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = c.pos;
        let id = c.u16("digest algorithmId")?;
        let alg = algorithms.iter().find(|a| a.id == id).ok_or_else(|| {
            let listed: Vec<String> = algorithms
                .iter()
                .map(|a| format!("{:#06x}", a.id))
                .collect();
            invalid(
                "digest algorithmId",
                at,
                &format!("one of the Spec ID event's ({})", listed.join(", ")),
                format!("{id:#06x}"),
            )
        })?;
        digests.push((id, c.bytes(usize::from(alg.size), "digest")?.to_vec()));
    }
    let size = c.u32("eventSize")?;
    if size > MAX_EVENT_SIZE {
        return Err(invalid(
            "eventSize",
            c.pos - 4,
            "at most 16 MiB",
            size.to_string(),
        ));
    }
    let data = c.bytes(size as usize, "event data")?.to_vec();
    Ok(LogEvent {
        number,
        offset,
        pcr,
        event_type,
        digests,
        data,
    })
}

#[cfg(test)]
mod tests;
