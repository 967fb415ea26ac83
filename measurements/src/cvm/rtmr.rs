//! Intel TDX runtime measurement registers (RTMR 0–3) of a TD that boots the image with TDVF
//! (edk2's TDX firmware) and no vTPM, derived from the same events a TPM boot logs.
//!
//! TDVF's `TdTcg2Dxe` measures the events `Tcg2Dxe` would measure for a TPM into the register
//! its `MapPcrToMrIndex` names, SHA-384 only, and logs them in the CC event log (ACPI `CCEL`,
//! the TCG2 format with the *CC MR index* in the PCR field: 0 = MRTD, 1 = RTMR0 … 4 = RTMR3):
//!
//! | PCR | register |
//! |---|---|
//! | 1, 7 | RTMR0 (CC MR 1) |
//! | 2–6 | RTMR1 (CC MR 2) |
//! | 8–15 | RTMR2 (CC MR 3) |
//!
//! An extend is `RTMR = SHA-384(RTMR ‖ digest)` from 48 zero bytes. What each register holds
//! for a boot of the disk's `\EFI\BOOT\BOOTX64.EFI` (edk2 `OvmfPkg/.../TdTcg2Dxe.c`,
//! `DxeTpm2MeasureBootLib.c`, systemd `src/boot/efi/measure.c`, Linux
//! `drivers/firmware/efi/libstub`; the facts and their sources are in `docs/cvm.md`):
//!
//! * **RTMR0**: the TD HOB, the configuration firmware volume, the Secure Boot variables, boot
//!   variables, ACPI tables: the platform's, never predicted from the image (`None`).
//! * **RTMR1**: "Calling EFI Application from Boot Option", one `EV_SEPARATOR` (only in the
//!   [`Edk2Layout::Rtmr1Separator`] layout), the GPT, the UKI (Authenticode SHA-384), the kernel
//!   systemd-stub starts with `LoadImage` (Secure Boot off only), "Exit Boot Services Invocation"
//!   and "… Returned with Success": the PCR 4 and 5 events of a TPM boot, without PCR 5's
//!   separator (TDVF measures one separator per register, not one per PCR).
//! * **RTMR2**: what systemd-stub measures into PCR 11/12/13 through the CC measurement protocol
//!   — only stubs ≥ 256 speak it (252 and 254 measure nothing there) — and the kernel's PCR 9
//!   events, which Linux ≥ 6.9 measures through the CC protocol when there is no TPM.
//! * **RTMR3**: nothing at boot (zero).

use std::collections::BTreeMap;

use crate::pcr::{Bank, Digest, Event, EventType, Prediction, StubFamily};

/// Where TDVF puts its ReadyToBoot separator: edk2 moved it between releases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Edk2Layout {
    /// One separator in RTMR0 and one in RTMR1: edk2 ≤ stable202211 and ≥ stable202411
    /// (commit efaf8931bb, "Fix the SeparatorEvent issue in RTMRs").
    #[default]
    Rtmr1Separator,
    /// Both separators in RTMR0, none in RTMR1: edk2 stable202302 … stable202408.01 (commit
    /// fb91d6cbd0 made the hard-coded `MeasureSeparatorEvent (1)` mean RTMR0).
    NoRtmr1Separator,
}

impl Edk2Layout {
    /// Both layouts, the default first.
    pub const ALL: [Edk2Layout; 2] = [Edk2Layout::Rtmr1Separator, Edk2Layout::NoRtmr1Separator];

    /// The name in configs, manifests and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Edk2Layout::Rtmr1Separator => "edk2-202411",
            Edk2Layout::NoRtmr1Separator => "edk2-202302",
        }
    }

    /// The layout called `name` (`edk2-202411` or `edk2-202302`).
    pub fn from_name(name: &str) -> Option<Edk2Layout> {
        Edk2Layout::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// One event of the CC event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CcEvent {
    /// The RTMR it extends (0–3); the CC event log records `rtmr + 1`.
    pub rtmr: u32,
    /// The TPM PCR the firmware or stub asked for.
    pub pcr: u32,
    /// Its type.
    pub event_type: EventType,
    /// What is measured, for people.
    pub description: String,
    /// The SHA-384 digest extended.
    pub digest: Digest,
}

impl CcEvent {
    /// The event as the log-replay code compares it: `pcr` is the CC MR index (`rtmr + 1`).
    pub fn as_log_event(&self) -> Event {
        Event {
            pcr: self.rtmr + 1,
            event_type: self.event_type,
            description: self.description.clone(),
            digests: [(Bank::Sha384, self.digest)].into(),
        }
    }
}

/// The predicted RTMRs of one boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtmrs {
    /// The separator layout predicted for.
    pub layout: Edk2Layout,
    /// RTMR index → value; RTMR0 is absent (the platform's), and RTMR1 without the disk.
    pub values: BTreeMap<u32, Digest>,
    /// The RTMR1–3 events in boot order.
    pub events: Vec<CcEvent>,
}

/// Why RTMRs cannot be derived from a prediction.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RtmrError {
    /// The prediction lacks the SHA-384 bank or a PCR the registers need.
    #[error("the PCR prediction has no {0}: RTMRs need SHA-384 PCRs 4, 5, 9, 11, 12 and 13 (predict from the disk)")]
    Incomplete(&'static str),
}

/// The first Linux release whose EFI stub measures through the CC protocol when no TPM exists
/// (v6.9: "efi/libstub: Measure into CC protocol if TCG2 protocol is absent").
pub const KERNEL_CC_SINCE: (u32, u32) = (6, 9);

/// Whether a kernel of `release` (`uname -r`, e.g. `6.1.0-28-cloud-amd64`) measures its PCR 9
/// events into RTMR2 on a TD without a TPM; `None` when the release does not parse.
pub fn kernel_measures_cc(release: &str) -> Option<bool> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    Some((major, minor) >= KERNEL_CC_SINCE)
}

/// Whether systemd-stub of `family` measures through the CC protocol (systemd ≥ 256, commit
/// 7ff0e0a5e0; 252–255 speak only the TCG2 protocol).
pub fn stub_measures_cc(family: StubFamily) -> bool {
    matches!(family, StubFamily::V256 | StubFamily::V257)
}

/// The RTMR1–3 events and values of the boot `p` predicts (made with the SHA-384 bank and the
/// disk's GPT), for TDVF with `layout`, the kernel measuring through the CC protocol or not.
pub fn predict(p: &Prediction, layout: Edk2Layout, kernel_cc: bool) -> Result<Rtmrs, RtmrError> {
    if !p.banks.contains(&Bank::Sha384) {
        return Err(RtmrError::Incomplete("SHA-384 bank"));
    }
    let predicted = &p.pcrs[&Bank::Sha384];
    for (pcr, name) in [(4, "PCR 4"), (11, "PCR 11")] {
        if !predicted.contains_key(&pcr) {
            return Err(RtmrError::Incomplete(name));
        }
    }
    // Without the disk's GPT (PCR 5) RTMR1 is unknown; RTMR2 and 3 are not.
    let with_rtmr1 = predicted.contains_key(&5);
    let stub_cc = stub_measures_cc(p.stub.family);
    let mut events = Vec::new();
    let mut pcr5_separator_seen = false;
    for e in &p.events {
        let rtmr = match e.pcr {
            4 | 5 if with_rtmr1 => 1,
            9 if kernel_cc => 2,
            11..=13 if stub_cc && e.event_type == EventType::IPL => 2,
            _ => continue,
        };
        // One separator per register: PCR 4's stands for RTMR1's (if the layout has one);
        // PCR 5's is a TPM-only event.
        if e.event_type == EventType::SEPARATOR {
            if e.pcr == 5 && !pcr5_separator_seen {
                pcr5_separator_seen = true;
                continue;
            }
            if layout == Edk2Layout::NoRtmr1Separator {
                continue;
            }
        }
        let digest = *e
            .digests
            .get(&Bank::Sha384)
            .ok_or(RtmrError::Incomplete("SHA-384 event digest"))?;
        events.push(CcEvent {
            rtmr,
            pcr: e.pcr,
            event_type: e.event_type,
            description: e.description.clone(),
            digest,
        });
    }
    let mut values: BTreeMap<u32, Digest> = (1..=3)
        .filter(|&r| r != 1 || with_rtmr1)
        .map(|r| (r, Bank::Sha384.zero()))
        .collect();
    for e in &events {
        if let Some(v) = values.get_mut(&e.rtmr) {
            *v = v.extend(&e.digest);
        }
    }
    Ok(Rtmrs {
        layout,
        values,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcr::{StubInfo, EXIT_BOOT_SERVICES_INVOCATION, EXIT_BOOT_SERVICES_SUCCESS};

    fn ev(pcr: u32, t: EventType, data: &[u8], what: &str) -> Event {
        Event {
            pcr,
            event_type: t,
            description: what.into(),
            digests: Bank::ALL.iter().map(|&b| (b, b.hash(data))).collect(),
        }
    }

    /// A TPM boot's events in the predictor's order (stub 257, Secure Boot off).
    fn prediction(family: StubFamily) -> Prediction {
        let sep = [0u8; 4];
        let events = vec![
            ev(7, EventType::SEPARATOR, &sep, "separator"),
            ev(
                4,
                EventType::EFI_ACTION,
                b"Calling EFI Application from Boot Option",
                "calling",
            ),
            ev(4, EventType::SEPARATOR, &sep, "separator"),
            ev(5, EventType::SEPARATOR, &sep, "separator"),
            ev(5, EventType::EFI_GPT_EVENT, b"gpt", "GPT"),
            ev(4, EventType::EFI_BOOT_SERVICES_APPLICATION, b"uki", "UKI"),
            ev(11, EventType::IPL, b".linux\0", ".linux"),
            ev(11, EventType::IPL, b"kernel", ".linux contents"),
            ev(
                4,
                EventType::EFI_BOOT_SERVICES_APPLICATION,
                b"kernel pe",
                "kernel",
            ),
            ev(9, EventType::EVENT_TAG, b"options", "LoadOptions"),
            ev(9, EventType::EVENT_TAG, b"initrd", "initrd"),
            ev(
                5,
                EventType::EFI_ACTION,
                EXIT_BOOT_SERVICES_INVOCATION.as_bytes(),
                "ebs",
            ),
            ev(
                5,
                EventType::EFI_ACTION,
                EXIT_BOOT_SERVICES_SUCCESS.as_bytes(),
                "ebs ok",
            ),
        ];
        let pcrs = Bank::ALL
            .iter()
            .map(|&b| {
                let v = crate::pcr::replay(&events, b, &[4, 5, 7, 9, 11, 12, 13]);
                (b, v)
            })
            .collect();
        Prediction {
            stub: StubInfo {
                version: "257".into(),
                major: 257,
                family,
            },
            firmware: Default::default(),
            banks: Bank::ALL.to_vec(),
            events,
            pcrs,
            pcr11_phases: BTreeMap::new(),
            uki_authenticode: BTreeMap::new(),
            kernel_authenticode: BTreeMap::new(),
            cmdline: None,
            authority: None,
        }
    }

    fn fold(digests: &[&[u8]]) -> Digest {
        digests
            .iter()
            .fold(Bank::Sha384.zero(), |v, d| v.extend(&Bank::Sha384.hash(d)))
    }

    #[test]
    fn rtmr1_is_pcr4_and_5_with_one_separator() {
        let p = prediction(StubFamily::V257);
        let r = predict(&p, Edk2Layout::Rtmr1Separator, false).unwrap();
        let rtmr1: Vec<&str> = r
            .events
            .iter()
            .filter(|e| e.rtmr == 1)
            .map(|e| e.description.as_str())
            .collect();
        assert_eq!(
            rtmr1,
            [
                "calling",
                "separator",
                "GPT",
                "UKI",
                "kernel",
                "ebs",
                "ebs ok"
            ]
        );
        let calling: &[u8] = b"Calling EFI Application from Boot Option";
        assert_eq!(
            r.values[&1],
            fold(&[
                calling,
                &[0; 4],
                b"gpt",
                b"uki",
                b"kernel pe",
                EXIT_BOOT_SERVICES_INVOCATION.as_bytes(),
                EXIT_BOOT_SERVICES_SUCCESS.as_bytes()
            ])
        );
        // Stub 257 speaks the CC protocol: its PCR 11 events; a 6.1 kernel's PCR 9 do not.
        assert_eq!(r.values[&2], fold(&[b".linux\0", b"kernel"]));
        assert_eq!(r.values[&3], Bank::Sha384.zero());
        assert!(!r.values.contains_key(&0), "RTMR0 is the platform's");
        // The CC event log's index is rtmr + 1.
        assert_eq!(r.events[0].as_log_event().pcr, 2);
    }

    #[test]
    fn layouts_stub_and_kernel_versions_change_what_is_measured() {
        let p = prediction(StubFamily::V257);
        let with = predict(&p, Edk2Layout::Rtmr1Separator, false).unwrap();
        let without = predict(&p, Edk2Layout::NoRtmr1Separator, false).unwrap();
        assert_eq!(with.events.len(), without.events.len() + 1);
        assert_ne!(with.values[&1], without.values[&1]);
        assert_eq!(with.values[&2], without.values[&2]);
        // Stub 252 and 254: nothing in RTMR2.
        for family in [StubFamily::V252, StubFamily::V254] {
            let r = predict(&prediction(family), Edk2Layout::Rtmr1Separator, false).unwrap();
            assert_eq!(r.values[&2], Bank::Sha384.zero());
            assert_eq!(r.values[&1], with.values[&1]);
        }
        // A kernel ≥ 6.9 adds its PCR 9 events to RTMR2.
        let k = predict(&p, Edk2Layout::Rtmr1Separator, true).unwrap();
        assert_eq!(
            k.values[&2],
            fold(&[b".linux\0", b"kernel", b"options", b"initrd"])
        );
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_measures_cc("6.1.0-28-cloud-amd64"), Some(false));
        assert_eq!(kernel_measures_cc("6.9.0"), Some(true));
        assert_eq!(kernel_measures_cc("6.12.38+deb13-cloud-amd64"), Some(true));
        assert_eq!(kernel_measures_cc("5.19.1"), Some(false));
        assert_eq!(kernel_measures_cc("7.0"), Some(true));
        assert_eq!(kernel_measures_cc("vmlinuz"), None);
    }

    #[test]
    fn without_the_gpt_rtmr1_is_unknown_and_without_sha384_nothing_is() {
        let full = predict(
            &prediction(StubFamily::V257),
            Edk2Layout::Rtmr1Separator,
            false,
        )
        .unwrap();
        let mut p = prediction(StubFamily::V257);
        p.pcrs.get_mut(&Bank::Sha384).unwrap().remove(&5);
        p.events.retain(|e| e.pcr != 5);
        let r = predict(&p, Edk2Layout::Rtmr1Separator, false).unwrap();
        assert!(!r.values.contains_key(&1));
        assert!(r.events.iter().all(|e| e.rtmr == 2));
        assert_eq!(r.values[&2], full.values[&2]);
        let mut p = prediction(StubFamily::V257);
        p.banks = vec![Bank::Sha256];
        assert!(predict(&p, Edk2Layout::Rtmr1Separator, false).is_err());
    }
}
