use std::collections::BTreeMap;

use super::*;
use crate::pcr::Event;

/// A real log: the fixture image with the Debian 257.13 stub booted by `nodeimg boot --tpm`
/// (OVMF 2022.11, swtpm 0.7, sha256 + sha384 banks); see fixtures/eventlog/README.md.
const LOG_257: &[u8] = include_bytes!("../../../fixtures/eventlog/ovmf-stub257.bin");
/// The PCR values nodeimg-init read from sysfs in the same boot.
const PCRS_257: &str = include_str!("../../../fixtures/eventlog/ovmf-stub257.pcrs.json");
/// The same for the 252 and 254 stubs.
const LOG_252: &[u8] = include_bytes!("../../../fixtures/eventlog/ovmf-stub252.bin");
const PCRS_252: &str = include_str!("../../../fixtures/eventlog/ovmf-stub252.pcrs.json");
const LOG_254: &[u8] = include_bytes!("../../../fixtures/eventlog/ovmf-stub254.bin");
const PCRS_254: &str = include_str!("../../../fixtures/eventlog/ovmf-stub254.pcrs.json");

fn observed(json: &str) -> BTreeMap<String, BTreeMap<u32, String>> {
    let raw: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(json).unwrap();
    raw.into_iter()
        .map(|(b, v)| {
            (
                b,
                v.into_iter()
                    .map(|(k, x)| (k.parse().unwrap(), x))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn parses_the_real_ovmf_log() {
    let log = EventLog::parse(LOG_257).unwrap();
    assert_eq!(
        log.algorithms,
        [
            Algorithm {
                id: 0x000b,
                size: 32
            },
            Algorithm {
                id: 0x000c,
                size: 48
            }
        ]
    );
    // tpm2_eventlog (tpm2-tools 5.4) lists events 0..=40; event 0 is the Spec ID event.
    assert_eq!(log.events.len(), 40);
    let pcr4: Vec<String> = log.measurements(4).map(|e| e.event_type.name()).collect();
    assert_eq!(
        pcr4,
        [
            "EV_EFI_ACTION",
            "EV_SEPARATOR",
            "EV_EFI_BOOT_SERVICES_APPLICATION",
            "EV_EFI_BOOT_SERVICES_APPLICATION"
        ]
    );
    // Digests as tpm2_eventlog prints them.
    let e23 = &log.events[22];
    assert_eq!((e23.number, e23.pcr), (23, 4));
    assert_eq!(
        e23.digest(Bank::Sha256).unwrap().to_hex(),
        "6141a0792fcd94013e79b1f9756654cb0424cfe5b659386b0b6e0f9b1e4be8db"
    );
    assert_eq!(
        e23.summary(),
        "image of 17069056 bytes, device path 0x02/0x01/0x01/0x01/0x04/0x01/\\EFI\\BOOT\\BOOTX64.EFI"
    );
    let e37 = &log.events[36];
    assert_eq!((e37.pcr, e37.event_type), (9, EventType::EVENT_TAG));
    assert_eq!(
        e37.digest(Bank::Sha256).unwrap().to_hex(),
        "99be996e63748850b2158d60f381ff4ce47d366723d8550e497e911869ce8478"
    );
    assert_eq!(
        e37.summary(),
        "tag 0x8f3b22ed \"LOADED_IMAGE::LoadOptions\""
    );
    assert_eq!(log.events[27].summary(), "\".cmdline\"");
    assert_eq!(
        log.events[13].summary(),
        "\"Calling EFI Application from Boot Option\""
    );
    assert_eq!(
        log.events[35].summary(),
        "image of 14186432 bytes, device path VenMedia(55c5d1f8-04cd-46b5-8a20-e56cbb3052d0)"
    );
}

#[test]
fn replay_equals_the_pcrs_the_tpm_reported() {
    // 252 measures 4 sections into PCR 11 (8 events), 254 and 257 six (12 events).
    for (name, bytes, json, pcr11_events) in [
        ("252", LOG_252, PCRS_252, 8),
        ("254", LOG_254, PCRS_254, 12),
        ("257", LOG_257, PCRS_257, 12),
    ] {
        let log = EventLog::parse(bytes).unwrap();
        assert_eq!(log.measurements(11).count(), pcr11_events, "{name}");
        let seen = observed(json);
        for bank in Bank::ALL {
            let replayed = log.replay(bank).unwrap();
            let pcrs: Vec<u32> = replayed.keys().copied().collect();
            assert_eq!(pcrs, [0, 1, 2, 3, 4, 5, 6, 7, 9, 11], "{name}");
            for (pcr, value) in &replayed {
                let want = &seen[bank.name()][pcr];
                assert_eq!(&value.to_hex(), want, "{name} {bank} PCR {pcr}");
            }
        }
    }
}

#[test]
fn every_truncation_is_an_error_and_nothing_panics() {
    for len in 0..LOG_257.len() {
        let cut = &LOG_257[..len];
        match EventLog::parse(cut) {
            Err(_) => {}
            // A cut exactly between records, or into the zero tail, is a shorter valid log.
            Ok(log) => assert!(log.events.len() < 40, "prefix {len} parsed whole"),
        }
    }
    let mut flipped = LOG_257.to_vec();
    for i in (0..flipped.len()).step_by(7) {
        flipped[i] ^= 0xa5;
        let _ = EventLog::parse(&flipped);
        flipped[i] ^= 0xa5;
    }
}

#[test]
fn errors_name_offset_and_expectation() {
    let err = EventLog::parse(&LOG_257[..40]).unwrap_err().to_string();
    assert!(
        err.contains("Spec ID event") && err.contains("offset 0x20"),
        "{err}"
    );
    let mut bad = LOG_257.to_vec();
    bad[32] = b'X';
    let err = EventLog::parse(&bad).unwrap_err().to_string();
    assert!(err.contains("Spec ID Event03"), "{err}");
    let mut padded = LOG_257.to_vec();
    padded.extend_from_slice(&[0; 64]);
    assert_eq!(EventLog::parse(&padded).unwrap().events.len(), 40);
}

#[test]
fn first_divergence_names_the_event() {
    let log = EventLog::parse(LOG_257).unwrap();
    let expected: Vec<Event> = log
        .events
        .iter()
        .filter(|e| e.event_type != EventType::NO_ACTION)
        .map(|e| Event {
            pcr: e.pcr,
            event_type: e.event_type,
            description: e.summary(),
            digests: Bank::ALL
                .iter()
                .map(|&b| (b, e.digest(b).unwrap()))
                .collect(),
        })
        .collect();
    for pcr in 0..16 {
        assert_eq!(first_divergence(&log, &expected, pcr, Bank::Sha256), None);
    }
    let mut changed = expected.clone();
    let cmdline = changed
        .iter()
        .position(|e| e.pcr == 11 && e.description == "\".cmdline\"")
        .unwrap()
        + 1;
    changed[cmdline].description = ".cmdline section contents".into();
    changed[cmdline]
        .digests
        .insert(Bank::Sha384, Bank::Sha384.hash(b"other"));
    assert_eq!(first_divergence(&log, &changed, 11, Bank::Sha256), None);
    let d = first_divergence(&log, &changed, 11, Bank::Sha384).unwrap();
    let msg = d.describe(11, Bank::Sha384);
    assert!(
        msg.starts_with("PCR 11 event 6 (.cmdline section contents): expected EV_IPL sha384 "),
        "{msg}"
    );
    assert!(msg.contains("\".cmdline\""), "{msg}");
    let short: Vec<Event> = expected.iter().filter(|e| e.pcr != 9).cloned().collect();
    assert!(matches!(
        first_divergence(&log, &short, 9, Bank::Sha256),
        Some(Divergence::Extra { index: 0, .. })
    ));
    let mut long = expected.clone();
    long.push(Event {
        pcr: 12,
        ..expected[0].clone()
    });
    let d = first_divergence(&log, &long, 12, Bank::Sha256).unwrap();
    assert!(d
        .describe(12, Bank::Sha256)
        .contains("is missing from the log"));
}
