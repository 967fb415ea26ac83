//! What the firmware measures into PCR 4 before the UKI runs, as named profiles of observed
//! firmware behaviour (`uki-pcr-verity.md` §6.1). edk2's `Tcg2Dxe` measures "Calling EFI
//! Application from Boot Option" and the PCR 0–6 separators at the first ReadyToBoot; every later
//! boot attempt adds "Returning from …" and "Calling …" again. Then every image started with
//! `LoadImage` is measured (Authenticode): the UKI, and — Secure Boot off, systemd-stub ≤ 257 —
//! the kernel the stub loads from `.linux`.

use serde::{Deserialize, Serialize};

use super::EventType;

/// `EV_EFI_ACTION` data at each boot attempt (40 ASCII bytes, no NUL).
pub const CALLING_EFI_APPLICATION: &str = "Calling EFI Application from Boot Option";
/// `EV_EFI_ACTION` data when a boot option returned.
pub const RETURNING_FROM_EFI_APPLICATION: &str = "Returning from EFI Application from Boot Option";
/// `EV_SEPARATOR` data.
pub const SEPARATOR: [u8; 4] = [0; 4];

/// Firmware behaviour that shapes PCR 4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirmwareProfile {
    /// OVMF (Debian's `OVMF_CODE_4M.fd`, fresh VARS, no network device) booting the disk's
    /// `\EFI\BOOT\BOOTX64.EFI` at the first attempt; Secure Boot off. Observed with
    /// `nodeimg boot` (q35, `-nodefaults`).
    #[default]
    Ovmf,
    /// Like `Ovmf`, but one boot option failed before the disk (seen with a fresh VARS store
    /// and a boot option that returns without loading an image): `Returning …` and a second
    /// `Calling …` precede the UKI.
    OvmfBootRetry,
}

/// One event the firmware measures from fixed data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedEvent {
    /// The event type.
    pub event_type: EventType,
    /// A description for people.
    pub description: &'static str,
    /// The bytes whose digest is extended.
    pub data: &'static [u8],
}

impl FirmwareProfile {
    /// Every profile, for listings.
    pub const ALL: [FirmwareProfile; 2] = [FirmwareProfile::Ovmf, FirmwareProfile::OvmfBootRetry];

    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            FirmwareProfile::Ovmf => "ovmf",
            FirmwareProfile::OvmfBootRetry => "ovmf-boot-retry",
        }
    }

    /// The profile called `name`.
    pub fn from_name(name: &str) -> Option<FirmwareProfile> {
        FirmwareProfile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The PCR 4 events before the first application image.
    pub fn pcr4_prelude(self) -> Vec<FixedEvent> {
        let calling = FixedEvent {
            event_type: EventType::EFI_ACTION,
            description: CALLING_EFI_APPLICATION,
            data: CALLING_EFI_APPLICATION.as_bytes(),
        };
        let mut v = vec![
            calling.clone(),
            FixedEvent {
                event_type: EventType::SEPARATOR,
                description: "separator",
                data: &SEPARATOR,
            },
        ];
        if self == FirmwareProfile::OvmfBootRetry {
            v.push(FixedEvent {
                event_type: EventType::EFI_ACTION,
                description: RETURNING_FROM_EFI_APPLICATION,
                data: RETURNING_FROM_EFI_APPLICATION.as_bytes(),
            });
            v.push(calling);
        }
        v
    }
}

impl std::fmt::Display for FirmwareProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
