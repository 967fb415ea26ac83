//! `manifest.json` (schema `nodeimg.manifest/v1`): what was built from what, and what a
//! verifier will measure. Keys are snake_case; digests are lowercase hex. Sections that a
//! build did not compute are omitted, never zero-filled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "nodeimg.manifest/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub image: Image,
    /// Output file name → digests.
    pub artifacts: BTreeMap<String, Artifact>,
    pub verity: Verity,
    pub stub: Stub,
    pub kernel: Kernel,
    pub disk: Disk,
    pub initrd: Initrd,
    /// Bank (`sha256`, `sha384`) → PCR index as a decimal string → expected value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcrs: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Bank → boot phase path (`enter-initrd`, …) → expected PCR 11 after that phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcr11_phases: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// The expected event log, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
    /// Secure Boot as the PCR prediction assumes it (absent in manifests written before it was
    /// recorded: Secure Boot off, nothing enrolled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<SecureBoot>,
    /// SEV-SNP launch digests, one per configured combination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp: Option<Vec<SnpEntry>>,
    /// TDX MRTDs, one per configured firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<Vec<TdxEntry>>,
    /// Per target platform: every PCR's reference value, where it comes from (the image, a
    /// known platform constant, a recorded boot) and whether a verifier enforces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<BTreeMap<String, crate::platforms::PlatformValues>>,
    pub inputs: Inputs,
}

/// The Secure Boot state PCR 7 (and PCR 4) were predicted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureBoot {
    /// Secure Boot enforcing, with these variables enrolled.
    pub enabled: bool,
    /// The enrolled signature lists (`PK`, `KEK`, `db`, `dbx`), each present only when
    /// enrolled.
    pub variables: BTreeMap<String, EnrolledVariable>,
    /// The db entry that authorises the UKI (Secure Boot on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<Authority>,
}

/// One enrolled EFI_SIGNATURE_LIST variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledVariable {
    pub sha256: String,
    /// The variable's bytes, base64 (public: certificates and hashes), so a verifier can
    /// recompute PCR 7 from the manifest alone.
    pub esl: String,
    /// Subjects of the X.509 entries, for people.
    pub certificates: Vec<String>,
}

/// The db entry the firmware measures as `EV_EFI_VARIABLE_AUTHORITY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    /// Signature owner GUID.
    pub owner: String,
    /// Certificate subject.
    pub subject: String,
    /// SHA-256 of the certificate DER.
    pub certificate_sha256: String,
}

/// One expected SEV-SNP launch digest: the firmware and launch parameters it holds for.
/// Computed as sev-snp-measure 0.0.13 `--mode snp` does, without kernel hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpEntry {
    pub vcpus: u32,
    /// QEMU CPU model name (`EPYC-v4`, …); ignored by the ec2 and gce flavours.
    pub vcpu_type: String,
    /// The vCPU signature it stands for, hex (`0x800f12`).
    pub vcpu_sig: String,
    /// `QEMU`, `ec2` or `gce`.
    pub vmm_type: String,
    /// SEV_FEATURES, hex (`0x1`).
    pub guest_features: String,
    /// SHA-256 of the firmware file.
    pub ovmf_sha256: String,
    /// The expected `MEASUREMENT` (SHA-384, hex).
    pub measurement: String,
    /// The guest policy the image is meant to run with, hex (`0x30000`); signed into the ID
    /// block when there is one. Absent in manifests of nodeimg before ID blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The ID block and ID auth signed for this digest and policy (`[measurements.snp] id-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_block: Option<SnpIdBlock>,
    /// QEMU arguments that launch with this policy (and ID block): `-object sev-snp-guest,…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_args: Option<Vec<String>>,
}

/// An SEV-SNP ID block and ID authentication structure, as QEMU's `sev-snp-guest` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpIdBlock {
    /// The 0x60-byte ID block, base64 (`id-block=`).
    pub block: String,
    /// The 0x1000-byte ID authentication information, base64 (`id-auth=`).
    pub auth: String,
    /// `FAMILY_ID`, 32 hex digits.
    pub family_id: String,
    /// `IMAGE_ID`, 32 hex digits.
    pub image_id: String,
    /// `GUEST_SVN`.
    pub guest_svn: u32,
    /// SHA-384 of the ID key's AMD structure, hex: the report's `ID_KEY_DIGEST`.
    pub id_key_digest: String,
    /// SHA-384 of the author key's AMD structure, hex: the report's `AUTHOR_KEY_DIGEST`
    /// (absent without an author key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_key_digest: Option<String>,
}

/// One expected TDX MRTD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxEntry {
    /// SHA-256 of the firmware file.
    pub ovmf_sha256: String,
    /// The expected `MRTD` (SHA-384, hex).
    pub mrtd: String,
    /// Whether the records were ordered per section (Intel's QEMU 8.x) rather than per page.
    pub two_pass: bool,
    /// RTMR 1–3 of a boot of the image by this firmware (no vTPM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmrs: Option<TdxRtmrs>,
}

/// The runtime measurement registers a TD reports after booting the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TdxRtmrs {
    /// The firmware's separator layout (`edk2-202411`, `edk2-202302`).
    pub edk2: String,
    /// Secure Boot enforcing (the kernel's `LoadImage` is then not measured).
    pub secure_boot: bool,
    /// RTMR index (`1`–`3`) → SHA-384 hex; RTMR0 is the platform's (TD HOB, firmware volume,
    /// ACPI tables, variables) and not listed.
    pub values: BTreeMap<String, String>,
    /// The expected CC event log entries of RTMR 1–3, in boot order.
    pub events: Vec<CcEvent>,
}

/// One expected CC event log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcEvent {
    /// The RTMR (0–3); the CC event log's index is `rtmr + 1`.
    pub rtmr: u32,
    /// The TPM PCR the event stands for.
    pub pcr: u32,
    /// TCG event type name.
    #[serde(rename = "type")]
    pub event_type: String,
    pub description: String,
    /// SHA-384 hex.
    pub sha384: String,
}

/// One expected measurement event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub pcr: u32,
    /// TCG event type name (`EV_EFI_ACTION`, `EV_IPL`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    pub description: String,
    /// Bank → digest extended.
    pub digests: BTreeMap<String, String>,
}

impl Event {
    /// The manifest's events as PCR events (digests of banks nodeimg does not predict are
    /// dropped; an unknown type name becomes type 0xffffffff, which no log event has).
    pub fn to_pcr_events(events: &[Event]) -> Vec<crate::pcr::Event> {
        use crate::pcr::{Bank, Digest, EventType};
        events
            .iter()
            .map(|e| crate::pcr::Event {
                pcr: e.pcr,
                event_type: EventType::from_name(&e.event_type).unwrap_or(EventType(u32::MAX)),
                description: e.description.clone(),
                digests: e
                    .digests
                    .iter()
                    .filter_map(|(b, hex)| {
                        let bank = Bank::from_name(b)?;
                        Some((bank, Digest::from_hex(bank, hex)?))
                    })
                    .collect(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    pub version: String,
    pub source_date_epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verity {
    pub root_hash: String,
    pub salt: String,
    /// Superblock UUID.
    pub uuid: String,
    pub data_blocks: u64,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub hash_algorithm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stub {
    /// From `.sdmagic`, e.g. `252.39-1~deb12u1`.
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    pub release: String,
    /// Path inside the rootfs.
    pub path: String,
    pub sha256: String,
    pub cmdline: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    pub guid: String,
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub name: String,
    pub type_guid: String,
    pub uuid: String,
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initrd {
    pub sha256: String,
    /// Module paths (relative to the modules directory) in load order.
    pub modules: Vec<String>,
    pub root_mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub rootfs: RootfsInput,
    /// The nodeimg-init binary inside the initrd (embedded in nodeimg unless overridden).
    pub init: Digest,
    /// The nodeimg that built the image (absent in manifests written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodeimg: Option<Tool>,
}

/// A program that took part in a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsInput {
    /// `tar` or `directory`.
    pub kind: String,
    /// SHA-256 of the tar file (absent for a directory, whose identity is the root hash).
    /// With the image name it derives the verity salt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Installed Debian packages → versions (Debian sources only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<BTreeMap<String, String>>,
    pub entries: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub sha256: String,
}
