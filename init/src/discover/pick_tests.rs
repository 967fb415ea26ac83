use super::*;
use crate::guid::DPS_ROOT_VERITY_X86_64 as VERITY;
use crate::guid::DPS_ROOT_X86_64 as ROOT;

const D: Guid = Guid([0xd0; 16]);
const H: Guid = Guid([0x40; 16]);
const OTHER: Guid = Guid([0x77; 16]);
const ESP: Guid = Guid([0xc1; 16]);

fn part(disk: &str, number: u32, type_guid: Guid, part_guid: Guid, has_node: bool) -> SeenPart {
    SeenPart {
        disk: disk.into(),
        entry: Partition {
            number,
            type_guid,
            part_guid,
            first_lba: 2048,
            last_lba: 4095,
            attributes: 0,
        },
        node: has_node.then(|| format!("{disk}{number}")),
    }
}

#[test]
fn picks_by_partuuid() {
    let seen = [
        part("vda", 1, ESP, OTHER, true),
        part("vda", 2, ROOT, D, true),
        part("vda", 3, VERITY, H, true),
    ];
    for fallback in [false, true] {
        assert_eq!(
            pick(&seen, D, H, fallback),
            Pick::Found {
                data: 1,
                hash: 2,
                by_type: false
            }
        );
    }
}

#[test]
fn waits_or_fails_with_a_reason() {
    type Case = (&'static str, Vec<SeenPart>, bool, &'static str);
    let cases: Vec<Case> = vec![
        ("nothing", vec![], false, "data partition PARTUUID d0d0d0d0-d0d0-d0d0-d0d0-d0d0d0d0d0d0 not found; verity partition"),
        ("no hash", vec![part("vda", 2, ROOT, D, true)], false, "verity partition PARTUUID 40404040-"),
        ("no node yet", vec![part("vda", 2, ROOT, D, false), part("vda", 3, VERITY, H, true)], false, "vda partition 2 is in the GPT but has no device yet"),
        ("fallback ambiguous", vec![part("vda", 2, ROOT, OTHER, true), part("vdb", 2, ROOT, ESP, true), part("vda", 3, VERITY, H, true)], true, "data partition PARTUUID d0d0"),
    ];
    for (name, seen, fallback, needle) in cases {
        match pick(&seen, D, H, fallback) {
            Pick::Wait(msg) => assert!(msg.contains(needle), "{name}: {msg}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn fails_on_type_mismatch_or_ambiguity() {
    type Case = (&'static str, Vec<SeenPart>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "data type",
            vec![part("vda", 2, VERITY, D, true), part("vda", 3, VERITY, H, true)],
            "data partition vda2 (PARTUUID d0d0d0d0-d0d0-d0d0-d0d0-d0d0d0d0d0d0) has type 2c7357ed-ebd2-46d9-aec1-23d437ec2bf5, expected DPS root-x86-64 4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        ),
        (
            "hash type",
            vec![part("vda", 2, ROOT, D, true), part("vda", 3, ESP, H, false)],
            "verity partition vda partition 3 (PARTUUID 40404040-4040-4040-4040-404040404040) has type c1c1",
        ),
        (
            "twice",
            vec![part("vda", 2, ROOT, D, true), part("vdb", 2, ROOT, D, true), part("vda", 3, VERITY, H, true)],
            "data partition PARTUUID d0d0d0d0-d0d0-d0d0-d0d0-d0d0d0d0d0d0 is ambiguous: found on vda2, vdb2",
        ),
    ];
    for (name, seen, needle) in cases {
        match pick(&seen, D, H, true) {
            Pick::Fail(msg) => assert!(msg.contains(needle), "{name}: {msg}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn falls_back_to_dps_types_only_when_asked() {
    let seen = [
        part("vda", 1, ESP, OTHER, true),
        part("vda", 2, ROOT, Guid([1; 16]), true),
        part("vda", 3, VERITY, Guid([2; 16]), true),
    ];
    assert!(matches!(pick(&seen, D, H, false), Pick::Wait(_)));
    assert_eq!(
        pick(&seen, D, H, true),
        Pick::Found {
            data: 1,
            hash: 2,
            by_type: true
        }
    );
}
