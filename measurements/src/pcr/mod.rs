//! TPM PCR prediction for a UKI booted directly by UEFI firmware: banks and digests, the
//! expected event list, and the models of what firmware (PCR 4), the Linux EFI stub (PCR 9) and
//! systemd-stub (PCR 11, 12, 13) measure, per stub version.
//!
//! Everything is pure: [`predict`] takes the UKI bytes and returns digests. The facts behind the
//! models are in `uki-pcr-verity.md` §3–§10 and were checked against real OVMF + swtpm boots.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha384};

mod cpio;
mod firmware;
mod gpt;
mod hashing;
mod phases;
mod predict;
mod stub;

pub use cpio::pack_literal as cpio_literal;
pub use firmware::FirmwareProfile;
pub use gpt::{
    gpt_event_data, GptError, EXIT_BOOT_SERVICES_INVOCATION, EXIT_BOOT_SERVICES_SUCCESS,
};
pub use phases::{pcr11_from_contents, phase_values, PhasePath, DEFAULT_PHASE_PATHS};
pub use predict::{
    predict, Options, PredictError, Prediction, SecureBoot, StubInfo, INITRD_TAG, LOAD_OPTIONS_TAG,
};
pub use stub::{mangle_cmdline, StubFamily};

/// The PCRs a prediction covers (5 only when the disk's GPT is given: [`Options::gpt`]).
pub const PREDICTED_PCRS: [u32; 7] = [4, 5, 7, 9, 11, 12, 13];

/// A TPM PCR bank (hash algorithm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bank {
    /// SHA-256 (TPM algorithm 0x000B).
    Sha256,
    /// SHA-384 (TPM algorithm 0x000C).
    Sha384,
}

impl Bank {
    /// Both banks, in the order manifests list them.
    pub const ALL: [Bank; 2] = [Bank::Sha256, Bank::Sha384];

    /// The name used in manifests, event logs and sysfs (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Bank::Sha256 => "sha256",
            Bank::Sha384 => "sha384",
        }
    }

    /// The bank named `name`, if nodeimg predicts it.
    pub fn from_name(name: &str) -> Option<Bank> {
        Bank::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The TCG algorithm identifier (`TPM_ALG_ID`).
    pub fn alg_id(self) -> u16 {
        match self {
            Bank::Sha256 => 0x000b,
            Bank::Sha384 => 0x000c,
        }
    }

    /// The bank with TCG algorithm identifier `id`.
    pub fn from_alg_id(id: u16) -> Option<Bank> {
        Bank::ALL.into_iter().find(|b| b.alg_id() == id)
    }

    /// Digest size in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Bank::Sha256 => 32,
            Bank::Sha384 => 48,
        }
    }

    /// A fresh incremental hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Bank::Sha256 => Hasher::Sha256(Sha256::new()),
            Bank::Sha384 => Hasher::Sha384(Sha384::new()),
        }
    }

    /// The digest of the concatenation of `pieces`.
    pub fn hash_pieces(self, pieces: &[&[u8]]) -> Digest {
        let mut h = self.hasher();
        for p in pieces {
            h.update(p);
        }
        h.finish()
    }

    /// The digest of `data`.
    pub fn hash(self, data: &[u8]) -> Digest {
        self.hash_pieces(&[data])
    }

    /// The all-zero value a PCR holds after TPM2_Startup(CLEAR).
    pub fn zero(self) -> Digest {
        Digest::from_slice(self, &[0u8; 48][..self.digest_len()]).unwrap_or_else(|| unreachable!())
    }
}

impl fmt::Display for Bank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An incremental hasher of one bank; cloneable so that a shared prefix is hashed once.
#[derive(Debug, Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(Sha256),
    /// SHA-384 state.
    Sha384(Sha384),
}

impl Hasher {
    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
        }
    }

    /// Feeds `n` zero bytes.
    pub fn update_zeros(&mut self, mut n: usize) {
        const ZEROS: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(ZEROS.len());
            self.update(&ZEROS[..k]);
            n -= k;
        }
    }

    /// The final digest.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::Sha256(h.finalize().into()),
            Hasher::Sha384(h) => Digest::Sha384(h.finalize().into()),
        }
    }
}

/// A digest of one bank. Displays as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Digest {
    /// A SHA-256 digest.
    Sha256([u8; 32]),
    /// A SHA-384 digest.
    Sha384([u8; 48]),
}

impl Digest {
    /// The digest of `bank` with these bytes; `None` if the length does not fit the bank.
    pub fn from_slice(bank: Bank, bytes: &[u8]) -> Option<Digest> {
        match bank {
            Bank::Sha256 => bytes.try_into().ok().map(Digest::Sha256),
            Bank::Sha384 => bytes.try_into().ok().map(Digest::Sha384),
        }
    }

    /// Parses lowercase or uppercase hex of the bank's size.
    pub fn from_hex(bank: Bank, hex: &str) -> Option<Digest> {
        Digest::from_slice(bank, &hex::decode(hex).ok()?)
    }

    /// The bank this digest belongs to.
    pub fn bank(&self) -> Bank {
        match self {
            Digest::Sha256(_) => Bank::Sha256,
            Digest::Sha384(_) => Bank::Sha384,
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Digest::Sha256(d) => d,
            Digest::Sha384(d) => d,
        }
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// `TPM2_PCR_Extend`: `H(self ‖ measurement)` in this digest's bank.
    pub fn extend(&self, measurement: &Digest) -> Digest {
        self.bank()
            .hash_pieces(&[self.as_bytes(), measurement.as_bytes()])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.bank(), self.to_hex())
    }
}

/// A TCG event type (`UINT32 eventType` in the event log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventType(pub u32);

impl EventType {
    /// `EV_NO_ACTION`: informational, never extended.
    pub const NO_ACTION: EventType = EventType(0x0000_0003);
    /// `EV_SEPARATOR`.
    pub const SEPARATOR: EventType = EventType(0x0000_0004);
    /// `EV_EVENT_TAG`.
    pub const EVENT_TAG: EventType = EventType(0x0000_0006);
    /// `EV_IPL`.
    pub const IPL: EventType = EventType(0x0000_000d);
    /// `EV_EFI_BOOT_SERVICES_APPLICATION`.
    pub const EFI_BOOT_SERVICES_APPLICATION: EventType = EventType(0x8000_0003);
    /// `EV_EFI_ACTION`.
    pub const EFI_ACTION: EventType = EventType(0x8000_0007);
    /// `EV_EFI_GPT_EVENT`.
    pub const EFI_GPT_EVENT: EventType = EventType(0x8000_0006);
    /// `EV_EFI_VARIABLE_DRIVER_CONFIG`.
    pub const EFI_VARIABLE_DRIVER_CONFIG: EventType = EventType(0x8000_0001);
    /// `EV_EFI_VARIABLE_AUTHORITY`.
    pub const EFI_VARIABLE_AUTHORITY: EventType = EventType(0x8000_00e0);

    const NAMES: [(u32, &'static str); 28] = [
        (0x0000_0000, "EV_PREBOOT_CERT"),
        (0x0000_0001, "EV_POST_CODE"),
        (0x0000_0003, "EV_NO_ACTION"),
        (0x0000_0004, "EV_SEPARATOR"),
        (0x0000_0005, "EV_ACTION"),
        (0x0000_0006, "EV_EVENT_TAG"),
        (0x0000_0007, "EV_S_CRTM_CONTENTS"),
        (0x0000_0008, "EV_S_CRTM_VERSION"),
        (0x0000_0009, "EV_CPU_MICROCODE"),
        (0x0000_000a, "EV_PLATFORM_CONFIG_FLAGS"),
        (0x0000_000b, "EV_TABLE_OF_DEVICES"),
        (0x0000_000c, "EV_COMPACT_HASH"),
        (0x0000_000d, "EV_IPL"),
        (0x0000_000e, "EV_IPL_PARTITION_DATA"),
        (0x0000_0012, "EV_NONHOST_INFO"),
        (0x8000_0001, "EV_EFI_VARIABLE_DRIVER_CONFIG"),
        (0x8000_0002, "EV_EFI_VARIABLE_BOOT"),
        (0x8000_0003, "EV_EFI_BOOT_SERVICES_APPLICATION"),
        (0x8000_0004, "EV_EFI_BOOT_SERVICES_DRIVER"),
        (0x8000_0005, "EV_EFI_RUNTIME_SERVICES_DRIVER"),
        (0x8000_0006, "EV_EFI_GPT_EVENT"),
        (0x8000_0007, "EV_EFI_ACTION"),
        (0x8000_0008, "EV_EFI_PLATFORM_FIRMWARE_BLOB"),
        (0x8000_0009, "EV_EFI_HANDOFF_TABLES"),
        (0x8000_000b, "EV_EFI_PLATFORM_FIRMWARE_BLOB2"),
        (0x8000_000c, "EV_EFI_VARIABLE_BOOT2"),
        (0x8000_0010, "EV_EFI_HCRTM_EVENT"),
        (0x8000_00e0, "EV_EFI_VARIABLE_AUTHORITY"),
    ];

    /// The TCG name (`EV_IPL`), or the hex value for types without one here.
    pub fn name(self) -> String {
        Self::NAMES
            .iter()
            .find(|(v, _)| *v == self.0)
            .map_or_else(|| format!("{:#010x}", self.0), |(_, s)| (*s).to_string())
    }

    /// The type called `name` (a TCG name, or hex as [`EventType::name`] prints it).
    pub fn from_name(name: &str) -> Option<EventType> {
        if let Some(hex) = name.strip_prefix("0x") {
            return u32::from_str_radix(hex, 16).ok().map(EventType);
        }
        Self::NAMES
            .iter()
            .find(|(_, s)| *s == name)
            .map(|(v, _)| EventType(*v))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// One measurement the boot is expected to make, in boot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The PCR it extends.
    pub pcr: u32,
    /// Its TCG event type.
    pub event_type: EventType,
    /// What is measured, for people (e.g. `section .cmdline (contents)`).
    pub description: String,
    /// The digest extended, per bank.
    pub digests: BTreeMap<Bank, Digest>,
}

/// Replays `events` (all of one bank's digests) from all-zero PCRs; returns PCR → value for
/// every PCR in `pcrs` (PCRs without events stay zero).
pub fn replay(events: &[Event], bank: Bank, pcrs: &[u32]) -> BTreeMap<u32, Digest> {
    let mut values: BTreeMap<u32, Digest> = pcrs.iter().map(|&p| (p, bank.zero())).collect();
    for e in events {
        if let (Some(v), Some(d)) = (values.get_mut(&e.pcr), e.digests.get(&bank)) {
            *v = v.extend(d);
        }
    }
    values
}

#[cfg(test)]
mod tests;
