use super::*;
use measurements::pcr::EventType;

const LOG: &[u8] = include_bytes!("../../../../fixtures/eventlog/ovmf-stub257.bin");
const PCRS: &str = include_str!("../../../../fixtures/eventlog/ovmf-stub257.pcrs.json");

/// A manifest made from the real boot itself: its PCRs 4/9/11/12/13 and logged events.
fn expected() -> Expected {
    let observed: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(PCRS).unwrap();
    let pcrs = observed
        .into_iter()
        .map(|(b, v)| {
            (
                b,
                v.into_iter()
                    .filter(|(k, _)| ["4", "9", "11", "12", "13"].contains(&k.as_str()))
                    .collect(),
            )
        })
        .collect();
    let log = EventLog::parse(LOG).unwrap();
    let events = log
        .events
        .iter()
        .filter(|e| [4, 9, 11].contains(&e.pcr) && e.event_type != EventType::NO_ACTION)
        .enumerate()
        .map(|(i, e)| manifest::Event {
            pcr: e.pcr,
            event_type: e.event_type.name(),
            description: if i == 8 {
                ".cmdline section contents (96 bytes)".into()
            } else {
                e.summary()
            },
            digests: Bank::ALL
                .iter()
                .map(|b| (b.name().to_string(), e.digest(*b).unwrap().to_hex()))
                .collect(),
        })
        .collect();
    Expected {
        pcrs: Some(pcrs),
        events: Some(events),
    }
}

fn observed() -> ObservedPcrs {
    let line =
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(PCRS).unwrap()).unwrap();
    ObservedPcrs::parse_json(&line).unwrap()
}

#[test]
fn a_boot_matches_its_own_manifest() {
    let a = attest(
        &expected(),
        Some(&observed()),
        Some(&GuestEventLog::Log(LOG.to_vec())),
    );
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    assert_eq!(a.rows.len(), 10);
    assert!(a.rows.iter().all(|r| r.ok));
}

#[test]
fn a_different_cmdline_is_named() {
    let mut e = expected();
    let events = e.events.as_mut().unwrap();
    let cmd = events
        .iter_mut()
        .find(|x| x.description.starts_with(".cmdline section contents"))
        .unwrap();
    for d in cmd.digests.values_mut() {
        *d = d.replace('a', "b");
    }
    for bank in ["sha256", "sha384"] {
        let v = e
            .pcrs
            .as_mut()
            .unwrap()
            .get_mut(bank)
            .unwrap()
            .get_mut("11")
            .unwrap();
        *v = "0".repeat(v.len());
    }
    let a = attest(
        &e,
        Some(&observed()),
        Some(&GuestEventLog::Log(LOG.to_vec())),
    );
    assert_eq!(a.problems.len(), 1, "{:?}", a.problems);
    let p = &a.problems[0];
    assert!(p.starts_with("PCR 11 differs (sha256 expected 0000"), "{p}");
    assert!(p.contains("first difference: PCR 11 event 6 (.cmdline section contents (96 bytes)): expected EV_IPL sha256"), "{p}");
    assert_eq!(a.rows.iter().filter(|r| !r.ok).count(), 2);
}

#[test]
fn missing_inputs_are_problems() {
    let e = expected();
    let a = attest(&e, None, None);
    assert!(a.problems[0].contains("no NODEIMG-PCRS line"));
    let a = attest(&Expected::default(), Some(&observed()), None);
    assert!(a.problems[0].contains("no `pcrs`"));
    let only256 = ObservedPcrs::parse_json(&format!(
        "{{\"sha256\":{}}}",
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(PCRS).unwrap()["sha256"])
            .unwrap()
    ))
    .unwrap();
    let a = attest(
        &e,
        Some(&only256),
        Some(&GuestEventLog::Unavailable("no TPM".into())),
    );
    assert_eq!(a.problems.len(), 5, "{:?}", a.problems);
    assert!(
        a.problems[0].contains("sha384 expected")
            && a.problems[0].contains("observed (not reported)"),
        "{}",
        a.problems[0]
    );
    assert!(
        a.problems[0].ends_with("the guest sent no event log (no TPM)"),
        "{}",
        a.problems[0]
    );
}
