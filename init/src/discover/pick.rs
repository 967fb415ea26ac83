//! Choosing the data and verity partitions among the GPT entries seen (pure).

use crate::gpt::Partition;
use crate::guid::{Guid, DPS_ROOT_VERITY_X86_64, DPS_ROOT_X86_64};

/// A GPT entry and where Linux shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenPart {
    /// Whole-disk kernel name.
    pub disk: String,
    /// The GPT entry.
    pub entry: Partition,
    /// Kernel name of the partition device, once sysfs has it.
    pub node: Option<String>,
}

impl SeenPart {
    fn label(&self) -> String {
        match &self.node {
            Some(n) => n.clone(),
            None => format!("{} partition {}", self.disk, self.entry.number),
        }
    }
}

/// The outcome of one look at the disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Indices into the scanned list of the data and verity partitions.
    Found {
        /// Data (erofs) partition.
        data: usize,
        /// Verity (hash) partition.
        hash: usize,
        /// True when chosen by DPS type GUID because no PARTUUID matched.
        by_type: bool,
    },
    /// Not (yet) there; the text says what is missing.
    Wait(String),
    /// Found, but unusable; waiting will not help.
    Fail(String),
}

/// The partition roles and their expected PARTUUIDs and DPS types.
#[derive(Debug, Clone, Copy)]
struct Role {
    name: &'static str,
    uuid: Guid,
    type_guid: Guid,
    type_name: &'static str,
}

/// Picks the partitions whose PARTUUIDs are `data_uuid` and `hash_uuid`.
///
/// With `type_fallback`, a disk layout without those PARTUUIDs but with exactly one DPS root
/// and one DPS root-verity partition is accepted (dm-verity still checks the root hash).
pub fn pick(seen: &[SeenPart], data_uuid: Guid, hash_uuid: Guid, type_fallback: bool) -> Pick {
    let data = Role {
        name: "data",
        uuid: data_uuid,
        type_guid: DPS_ROOT_X86_64,
        type_name: "root-x86-64",
    };
    let hash = Role {
        name: "verity",
        uuid: hash_uuid,
        type_guid: DPS_ROOT_VERITY_X86_64,
        type_name: "root-verity-x86-64",
    };
    let by_uuid = (find_one(seen, data), find_one(seen, hash));
    match by_uuid {
        (Err(msg), _) | (_, Err(msg)) => Pick::Fail(msg),
        (Ok(Some(d)), Ok(Some(h))) => ready(seen, d, h, false),
        (Ok(d), Ok(h)) if type_fallback => match by_type(seen) {
            Some((d, h)) => ready(seen, d, h, true),
            None => Pick::Wait(missing(d, h, data, hash)),
        },
        (Ok(d), Ok(h)) => Pick::Wait(missing(d, h, data, hash)),
    }
}

fn missing(d: Option<usize>, h: Option<usize>, data: Role, hash: Role) -> String {
    let mut parts = Vec::new();
    for (found, role) in [(d, data), (h, hash)] {
        if found.is_none() {
            parts.push(format!(
                "{} partition PARTUUID {} not found",
                role.name, role.uuid
            ));
        }
    }
    parts.join("; ")
}

/// The single entry with the role's PARTUUID, checking its type; an error if ambiguous or mistyped.
fn find_one(seen: &[SeenPart], role: Role) -> Result<Option<usize>, String> {
    let hits: Vec<usize> = (0..seen.len())
        .filter(|&i| seen[i].entry.part_guid == role.uuid)
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [i] => {
            let p = &seen[*i];
            if p.entry.type_guid != role.type_guid {
                return Err(format!(
                    "{} partition {} (PARTUUID {}) has type {}, expected DPS {} {}",
                    role.name,
                    p.label(),
                    role.uuid,
                    p.entry.type_guid,
                    role.type_name,
                    role.type_guid
                ));
            }
            Ok(Some(*i))
        }
        many => {
            let labels: Vec<String> = many.iter().map(|&i| seen[i].label()).collect();
            Err(format!(
                "{} partition PARTUUID {} is ambiguous: found on {}",
                role.name,
                role.uuid,
                labels.join(", ")
            ))
        }
    }
}

fn by_type(seen: &[SeenPart]) -> Option<(usize, usize)> {
    let only = |t: Guid| {
        let hits: Vec<usize> = (0..seen.len())
            .filter(|&i| seen[i].entry.type_guid == t)
            .collect();
        match hits.as_slice() {
            [i] => Some(*i),
            _ => None,
        }
    };
    Some((only(DPS_ROOT_X86_64)?, only(DPS_ROOT_VERITY_X86_64)?))
}

fn ready(seen: &[SeenPart], data: usize, hash: usize, by_type: bool) -> Pick {
    for i in [data, hash] {
        if seen[i].node.is_none() {
            return Pick::Wait(format!(
                "{} is in the GPT but has no device yet",
                seen[i].label()
            ));
        }
    }
    Pick::Found {
        data,
        hash,
        by_type,
    }
}

#[cfg(test)]
#[path = "pick_tests.rs"]
mod tests;
