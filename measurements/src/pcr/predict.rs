//! The whole prediction for a UKI booted directly by the firmware: the expected events of
//! PCRs 4, 9 and 11 in boot order, the PCR 4/9/11/12/13 values they give in every bank, and
//! PCR 11 after systemd's boot phases.

use std::borrow::Cow;
use std::collections::BTreeMap;

use thiserror::Error;

use crate::authenticode::{self, AuthenticodeError};
use crate::pe::{Pe, PeError};

use super::hashing::{hash_all, Chunk};
use super::stub::{load_options_bytes, Memory, UkiSections};
use super::{
    phase_values, Bank, Digest, Event, EventType, FirmwareProfile, StubFamily, DEFAULT_PHASE_PATHS,
    PREDICTED_PCRS,
};

/// `EV_EVENT_TAG` id of the kernel's LoadOptions event (`LOADED_IMAGE::LoadOptions`).
pub const LOAD_OPTIONS_TAG: u32 = 0x8f3b_22ed;
/// `EV_EVENT_TAG` id of the kernel's initrd event (`Linux initrd`).
pub const INITRD_TAG: u32 = 0x8f3b_22ec;
/// The kernel's event data strings; a kernel without them does not measure into PCR 9.
const LOAD_OPTIONS_MARKER: &[u8] = b"LOADED_IMAGE::LoadOptions";
const INITRD_MARKER: &[u8] = b"Linux initrd";
/// x86-64 (`IMAGE_FILE_MACHINE_AMD64`).
const MACHINE_X86_64: u16 = 0x8664;

/// Why a UKI's measurements cannot be predicted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PredictError {
    /// The UKI is not a valid PE image.
    #[error("parsing the UKI: {0}")]
    Uki(#[source] PeError),
    /// The kernel in `.linux` is not a valid PE image.
    #[error("parsing the kernel in .linux: {0}")]
    Kernel(#[source] PeError),
    /// An Authenticode digest could not be computed.
    #[error("Authenticode of the {what}: {source}")]
    Authenticode {
        /// `UKI` or `kernel`.
        what: &'static str,
        /// Why.
        #[source]
        source: AuthenticodeError,
    },
    /// The UKI has no `.sdmagic`, so its stub version is unknown.
    #[error("the UKI has no .sdmagic section: its systemd-stub version is unknown")]
    NoStubVersion,
    /// The stub version is not one nodeimg models.
    #[error("systemd-stub {version} is not a version nodeimg can predict (known: 252, 254, 257)")]
    UnknownStub {
        /// The version from `.sdmagic`.
        version: String,
    },
    /// Secure Boot is on but the firmware would not start the UKI.
    #[error("Secure Boot: {0}")]
    SecureBoot(String),
    /// Only PCR 11 is known for this stub version; PCR 4/9 were never checked on a real boot.
    #[error(
        "systemd-stub {version}: its PCR 9 initrd and command-line handling was never verified \
         on a real boot (verified: 252, 254, 257)"
    )]
    UnverifiedStub {
        /// The version from `.sdmagic`.
        version: String,
    },
    /// The UKI has no `.linux` section.
    #[error("the UKI has no .linux section")]
    NoLinux,
    /// The UKI uses a feature whose measurements depend on the machine or boot entry.
    #[error("the UKI has a {section} section: {why}")]
    Unsupported {
        /// The section.
        section: &'static str,
        /// Why it cannot be predicted.
        why: &'static str,
    },
    /// A section claims more memory than its file data holds.
    #[error(
        "section {section}: VirtualSize {virtual_size:#x} exceeds SizeOfRawData {raw_size:#x}, \
         so the stub would measure zero-filled memory (ukify never writes that; refused)"
    )]
    SectionBeyondFile {
        /// The section name.
        section: String,
        /// Its `VirtualSize`.
        virtual_size: u32,
        /// Its `SizeOfRawData`.
        raw_size: u32,
    },
    /// The stub would not start the kernel with LoadImage.
    #[error("the kernel in .linux {why}: systemd-stub would use the EFI handover protocol, which nodeimg does not model")]
    KernelHandover {
        /// What is wrong with the kernel.
        why: String,
    },
}

/// What to predict.
#[derive(Debug, Clone)]
pub struct Options {
    /// Banks to compute (at least one).
    pub banks: Vec<Bank>,
    /// Firmware behaviour before the UKI runs.
    pub firmware: FirmwareProfile,
    /// Phase paths for [`Prediction::pcr11_phases`].
    pub phase_paths: Vec<String>,
    /// The PCRs to predict (a subset of [`PREDICTED_PCRS`]): only the events of these are
    /// hashed and reported; the Authenticode digests only when PCR 4 is among them, the PCR 11
    /// phases only with PCR 11.
    pub pcrs: Vec<u32>,
    /// The Secure Boot state and enrolled keys (PCR 7; with Secure Boot on also PCR 4).
    pub secure_boot: SecureBoot,
    /// The disk's `UEFI_GPT_DATA` ([`super::gpt_event_data`]): PCR 5 is predicted only with it.
    pub gpt: Option<Vec<u8>>,
}

/// What the firmware enforces and has enrolled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecureBoot {
    /// Secure Boot enforcing (PK enrolled, `SecureBoot` = 1).
    pub enabled: bool,
    /// The enrolled PK, KEK, db and dbx (empty lists: not enrolled; with Secure Boot off,
    /// OVMF's default empty store has none).
    pub keys: crate::secureboot::pcr7::EnrolledKeys,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            banks: Bank::ALL.to_vec(),
            firmware: FirmwareProfile::default(),
            phase_paths: DEFAULT_PHASE_PATHS.iter().map(|s| s.to_string()).collect(),
            pcrs: PREDICTED_PCRS.to_vec(),
            secure_boot: SecureBoot::default(),
            gpt: None,
        }
    }
}

/// The systemd-stub a UKI was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubInfo {
    /// The version string from `.sdmagic` (e.g. `252.39-1~deb12u2`).
    pub version: String,
    /// Its major version.
    pub major: u32,
    /// Its behaviour family.
    pub family: StubFamily,
}

/// The predicted measurements of a UKI.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The stub.
    pub stub: StubInfo,
    /// The firmware profile used for PCR 4.
    pub firmware: FirmwareProfile,
    /// The banks computed.
    pub banks: Vec<Bank>,
    /// Every expected event of PCRs 4, 9 and 11, in the order the boot makes them.
    pub events: Vec<Event>,
    /// Bank → PCR → value, for PCRs 4, 9, 11, 12 and 13 (12 and 13 stay zero: nodeimg
    /// UKIs carry no credentials, addons, sysexts or profiles).
    pub pcrs: BTreeMap<Bank, BTreeMap<u32, Digest>>,
    /// Bank → (phase path, PCR 11 after it), in the order of [`Options::phase_paths`].
    pub pcr11_phases: BTreeMap<Bank, Vec<(String, Digest)>>,
    /// Authenticode of the UKI, per bank.
    pub uki_authenticode: BTreeMap<Bank, Digest>,
    /// Authenticode of the kernel in `.linux`, per bank.
    pub kernel_authenticode: BTreeMap<Bank, Digest>,
    /// The command line the stub hands to the kernel (after its clean-up), if any.
    pub cmdline: Option<String>,
    /// With Secure Boot on: the db entry that authorises the UKI.
    pub authority: Option<crate::secureboot::esl::Entry>,
}

/// An event whose digests are still to be computed: index of its message.
struct Pending {
    pcr: u32,
    event_type: EventType,
    description: String,
    message: usize,
    /// The kernel feature without which the event does not happen.
    needs: Option<KernelFeature>,
}

/// What the kernel's EFI stub must be able to do for a PCR 9 event to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KernelFeature {
    /// Measures LoadOptions (Linux ≥ 6.1).
    LoadOptions,
    /// Measures the LoadFile2 initrd (Linux ≥ 5.17).
    Initrd,
}

/// Collects messages to hash and the events that use them.
#[derive(Default)]
struct Plan<'a> {
    messages: Vec<Vec<Chunk<'a>>>,
    events: Vec<Pending>,
    uki_auth: usize,
    kernel_auth: usize,
}

impl<'a> Plan<'a> {
    fn message(&mut self, chunks: Vec<Chunk<'a>>) -> usize {
        self.messages.push(chunks);
        self.messages.len() - 1
    }

    fn event(&mut self, pcr: u32, t: EventType, description: String, chunks: Vec<Chunk<'a>>) {
        let message = self.message(chunks);
        self.events.push(Pending {
            pcr,
            event_type: t,
            description,
            message,
            needs: None,
        });
    }
}

/// Predicts the measurements of booting `uki` as `\EFI\BOOT\BOOTX64.EFI` with Secure Boot off.
pub fn predict(uki: &[u8], opts: &Options) -> Result<Prediction, PredictError> {
    // Without the disk's GPT, PCR 5 is not predicted.
    let without_pcr5;
    let opts = if opts.gpt.is_none() && opts.pcrs.contains(&5) {
        without_pcr5 = Options {
            pcrs: opts.pcrs.iter().copied().filter(|&p| p != 5).collect(),
            ..opts.clone()
        };
        &without_pcr5
    } else {
        opts
    };
    let pe = Pe::parse(uki).map_err(PredictError::Uki)?;
    let stub = stub_info(&pe)?;
    refuse_unsupported(&pe, stub.family)?;
    let linux_section = stub
        .family
        .find(&pe, ".linux")
        .ok_or(PredictError::NoLinux)?;
    let linux = memory(&pe, linux_section)?;
    let kernel_bytes: Cow<'_, [u8]> = if linux.len > linux.data.len() {
        Cow::Owned(linux.to_vec())
    } else {
        Cow::Borrowed(linux.data)
    };
    let kernel = Pe::parse(&kernel_bytes).map_err(PredictError::Kernel)?;
    check_kernel_loadimage(&kernel)?;
    let authority = if opts.secure_boot.enabled {
        Some(authorising_entry(uki, &opts.secure_boot)?)
    } else {
        None
    };
    let (mut plan, cmdline) = plan(&pe, &kernel, stub.family, opts, authority.as_ref())?;
    // Messages only unselected PCRs use are not hashed (their digests are never reported).
    let wanted = |pcr: u32| opts.pcrs.contains(&pcr);
    let mut needed = vec![false; plan.messages.len()];
    for e in plan.events.iter().filter(|e| wanted(e.pcr)) {
        needed[e.message] = true;
    }
    for (m, msg) in plan.messages.iter_mut().enumerate() {
        if !needed[m] {
            msg.clear();
        }
    }
    // The scan for the kernel's PCR 9 support runs while the hashes are computed.
    let (digests, support) = std::thread::scope(|s| {
        let scan = s.spawn(|| kernel_pcr9_support(&kernel_bytes));
        let digests = hash_all(&plan.messages, &opts.banks);
        (digests, scan.join())
    });
    let support = support.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let mut p = assemble(stub, opts, &plan, &digests, support, cmdline);
    p.authority = authority;
    Ok(p)
}

/// The db entry through which the firmware starts `uki`, after the checks it makes: signed,
/// not revoked in dbx (by certificate or by Authenticode SHA-256), anchored in db.
fn authorising_entry(
    uki: &[u8],
    sb: &SecureBoot,
) -> Result<crate::secureboot::esl::Entry, PredictError> {
    use crate::secureboot::{authenticode, cert, esl, pcr7, EFI_CERT_SHA256, EFI_CERT_X509};
    let err = |m: String| PredictError::SecureBoot(m);
    let signatures = authenticode::signer_certificates(uki).map_err(|e| err(e.to_string()))?;
    if signatures.is_empty() {
        return Err(err(
            "the UKI is not signed, so the firmware would refuse it (sign it with nodeimg sign-uki \
             or [secure-boot] in the config)"
                .into(),
        ));
    }
    let dbx = esl::parse(&sb.keys.dbx).map_err(|e| err(format!("dbx: {e}")))?;
    // The whole UKI is hashed again only when dbx holds image digests to compare with.
    let digest = if dbx.iter().any(|l| l.signature_type == EFI_CERT_SHA256) {
        Some(
            crate::authenticode::digest_of(uki, Bank::Sha256)
                .map_err(|e| err(format!("Authenticode of the UKI: {e}")))?,
        )
    } else {
        None
    };
    for list in &dbx {
        for e in &list.entries {
            let revoked = (list.signature_type == EFI_CERT_SHA256
                && digest.as_ref().is_some_and(|d| e.data == d.as_bytes()))
                || (list.signature_type == EFI_CERT_X509
                    && cert::parse(&e.data, "dbx entry")
                        .is_ok_and(|c| signatures.iter().flatten().any(|s| *s == c)));
            if revoked {
                return Err(err(format!(
                    "dbx revokes the UKI (entry owned by {}): the firmware would refuse it",
                    e.owner
                )));
            }
        }
    }
    pcr7::authorising_entry(&sb.keys.db, &signatures)
        .map_err(|e| err(format!("db: {e}")))?
        .ok_or_else(|| {
            let subjects: Vec<String> = signatures
                .iter()
                .flatten()
                .map(|c| format!("'{}'", c.tbs_certificate.subject))
                .collect();
            err(format!(
                "no db certificate authorises the UKI's signature (signed by {}): the firmware \
                 would refuse it",
                subjects.join(", ")
            ))
        })
}

/// Every message to hash and every event, in boot order; and the handed-over command line.
fn plan<'a>(
    pe: &Pe<'a>,
    kernel: &Pe<'a>,
    family: StubFamily,
    opts: &Options,
    authority: Option<&crate::secureboot::esl::Entry>,
) -> Result<(Plan<'a>, Option<String>), PredictError> {
    use crate::secureboot::pcr7;
    let mut plan = Plan::default();
    plan.uki_auth = plan.message(auth_chunks(pe, "UKI")?);
    plan.kernel_auth = plan.message(auth_chunks(kernel, "kernel")?);
    let sb = &opts.secure_boot;
    for e in pcr7::config_events(sb.enabled, &sb.keys) {
        plan.event(7, e.event_type, e.description, vec![owned(e.data)]);
    }
    for e in opts.firmware.pcr4_prelude() {
        let chunks = vec![borrowed(e.data)];
        plan.event(4, e.event_type, e.description.into(), chunks);
    }
    // PCR 5: the separator at ReadyToBoot, the GPT when the disk is first read.
    plan.event(
        5,
        EventType::SEPARATOR,
        "separator".into(),
        vec![borrowed(&super::firmware::SEPARATOR)],
    );
    if let Some(gpt) = &opts.gpt {
        let used = gpt
            .get(92..100)
            .map_or(0, |c| u64::from_le_bytes(c.try_into().unwrap_or_default()));
        plan.event(
            5,
            EventType::EFI_GPT_EVENT,
            format!("GPT: header and {used} used partition entries"),
            vec![owned(gpt.clone())],
        );
    }
    if let Some(entry) = authority {
        let e = pcr7::authority_event(entry, "the UKI");
        plan.event(7, e.event_type, e.description, vec![owned(e.data)]);
    }
    let (uki_auth, kernel_auth) = (plan.uki_auth, plan.kernel_auth);
    push_app(
        &mut plan,
        uki_auth,
        "UKI \\EFI\\BOOT\\BOOTX64.EFI (Authenticode)",
    );
    let sections = pcr11_events(&mut plan, pe, family)?;
    // With Secure Boot on, systemd-stub 252, 254 and 257 all start the kernel without a
    // firmware measurement (observed: no PCR 4 event, no authority event for it).
    if !sb.enabled {
        let started = "kernel from .linux, started by systemd-stub with LoadImage (Authenticode)";
        push_app(&mut plan, kernel_auth, started);
    }
    let cmdline = pcr9_events(&mut plan, pe, family, &sections)?;
    // PCR 5: the kernel's EFI stub leaves boot services.
    for action in [
        super::EXIT_BOOT_SERVICES_INVOCATION,
        super::EXIT_BOOT_SERVICES_SUCCESS,
    ] {
        plan.event(
            5,
            EventType::EFI_ACTION,
            action.into(),
            vec![borrowed(action.as_bytes())],
        );
    }
    Ok((plan, cmdline))
}

/// Turns the plan and its digests into the prediction; drops the PCR 9 events the kernel
/// cannot make (`support` = (measures LoadOptions, measures the initrd)).
fn assemble(
    stub: StubInfo,
    opts: &Options,
    plan: &Plan<'_>,
    digests: &[Vec<Digest>],
    support: (bool, bool),
    cmdline: Option<String>,
) -> Prediction {
    let per_bank = |m: usize| -> BTreeMap<Bank, Digest> {
        opts.banks
            .iter()
            .copied()
            .zip(digests[m].iter().copied())
            .collect()
    };
    let happens = |p: &&Pending| match p.needs {
        None => true,
        Some(KernelFeature::LoadOptions) => support.0,
        Some(KernelFeature::Initrd) => support.1,
    };
    let wanted = |p: &&Pending| opts.pcrs.contains(&p.pcr);
    let events: Vec<Event> = plan
        .events
        .iter()
        .filter(happens)
        .filter(wanted)
        .map(|p| Event {
            pcr: p.pcr,
            event_type: p.event_type,
            description: p.description.clone(),
            digests: per_bank(p.message),
        })
        .collect();
    let selected: Vec<u32> = PREDICTED_PCRS
        .iter()
        .copied()
        .filter(|p| opts.pcrs.contains(p))
        .collect();
    let pcrs: BTreeMap<Bank, BTreeMap<u32, Digest>> = opts
        .banks
        .iter()
        .map(|&b| (b, super::replay(&events, b, &selected)))
        .collect();
    let paths: Vec<&str> = opts.phase_paths.iter().map(String::as_str).collect();
    let pcr11_phases = pcrs
        .iter()
        .filter_map(|(&b, v)| Some((b, phase_values(*v.get(&11)?, &paths))))
        .collect();
    let authenticode = |m: usize| {
        if opts.pcrs.contains(&4) {
            per_bank(m)
        } else {
            BTreeMap::new()
        }
    };
    Prediction {
        stub,
        firmware: opts.firmware,
        banks: opts.banks.clone(),
        uki_authenticode: authenticode(plan.uki_auth),
        kernel_authenticode: authenticode(plan.kernel_auth),
        events,
        pcrs,
        pcr11_phases,
        cmdline,
        authority: None,
    }
}

/// A section as loaded, refusing one whose `VirtualSize` exceeds its file data (a UKI that
/// claims gigabytes of zero-filled memory would otherwise make us hash them).
fn memory<'a>(pe: &Pe<'a>, s: &crate::pe::Section) -> Result<Memory<'a>, PredictError> {
    if s.virtual_size > s.size_of_raw_data {
        return Err(PredictError::SectionBeyondFile {
            section: s.name_lossy(),
            virtual_size: s.virtual_size,
            raw_size: s.size_of_raw_data,
        });
    }
    Memory::of(pe, s).map_err(PredictError::Uki)
}

fn borrowed(data: &[u8]) -> Chunk<'_> {
    Chunk::Bytes(Cow::Borrowed(data))
}

fn owned<'a>(data: Vec<u8>) -> Chunk<'a> {
    Chunk::Bytes(Cow::Owned(data))
}

fn push_app(plan: &mut Plan<'_>, message: usize, description: &str) {
    plan.events.push(Pending {
        pcr: 4,
        event_type: EventType::EFI_BOOT_SERVICES_APPLICATION,
        description: description.to_string(),
        message,
        needs: None,
    });
}

/// The stub version from `.sdmagic`, mapped to a family whose full model was verified.
fn stub_info(pe: &Pe<'_>) -> Result<StubInfo, PredictError> {
    let v = pe
        .stub_version()
        .map_err(PredictError::Uki)?
        .ok_or(PredictError::NoStubVersion)?;
    let family = StubFamily::from_major(v.major).ok_or_else(|| PredictError::UnknownStub {
        version: v.version.clone(),
    })?;
    if !StubFamily::verified_major(v.major) {
        return Err(PredictError::UnverifiedStub { version: v.version });
    }
    Ok(StubInfo {
        version: v.version,
        major: v.major,
        family,
    })
}

/// Sections whose measurement depends on the boot entry or the hardware.
fn refuse_unsupported(pe: &Pe<'_>, family: StubFamily) -> Result<(), PredictError> {
    let unsupported: [(&str, &str); 4] = [
        (
            ".profile",
            "multi-profile UKIs measure the selected profile, which the boot entry chooses",
        ),
        (
            ".dtbauto",
            "the stub measures the devicetree matching the machine's hardware IDs",
        ),
        (
            ".hwids",
            "the stub selects sections by the machine's hardware IDs",
        ),
        (".efifw", "firmware images are selected by the machine"),
    ];
    for (section, why) in unsupported {
        if family.pcr11_order().contains(&section) && family.find(pe, section).is_some() {
            return Err(PredictError::Unsupported { section, why });
        }
    }
    Ok(())
}

/// The stub starts the kernel with LoadImage only for an x86-64 PE with `MajorImageVersion ≥ 1`.
fn check_kernel_loadimage(kernel: &Pe<'_>) -> Result<(), PredictError> {
    if kernel.optional.major_image_version < 1 {
        return Err(PredictError::KernelHandover {
            why: "has MajorImageVersion 0 (EFI stub older than 1.0, Linux < 5.8)".into(),
        });
    }
    if kernel.coff.machine != MACHINE_X86_64 {
        return Err(PredictError::KernelHandover {
            why: format!("is not x86-64 (machine {:#06x})", kernel.coff.machine),
        });
    }
    Ok(())
}

/// Whether the kernel's EFI stub measures LoadOptions (Linux ≥ 6.1) and the initrd
/// (≥ 5.17) into PCR 9: its event description strings are present.
fn kernel_pcr9_support(kernel: &[u8]) -> (bool, bool) {
    let (mut options, mut initrd) = (false, false);
    // The strings sit in the EFI stub's data near the end of a bzImage: search backwards.
    for i in (0..kernel.len()).rev().filter(|&i| kernel[i] == b'L') {
        let rest = &kernel[i..];
        options |= rest.starts_with(LOAD_OPTIONS_MARKER);
        initrd |= rest.starts_with(INITRD_MARKER);
        if options && initrd {
            break;
        }
    }
    (options, initrd)
}

fn auth_chunks<'a>(pe: &Pe<'a>, what: &'static str) -> Result<Vec<Chunk<'a>>, PredictError> {
    let data = pe.data();
    let ranges = authenticode::hashed_ranges(pe)
        .map_err(|source| PredictError::Authenticode { what, source })?;
    Ok(ranges.into_iter().map(|r| borrowed(&data[r])).collect())
}

/// PCR 11: name (with NUL) and contents of every measured section, in the stub's order.
fn pcr11_events<'a>(
    plan: &mut Plan<'a>,
    pe: &Pe<'a>,
    family: StubFamily,
) -> Result<UkiSections<'a>, PredictError> {
    let mut sections = UkiSections::default();
    for &name in family.pcr11_order() {
        let Some(s) = family.find(pe, name) else {
            continue;
        };
        let mem = memory(pe, s)?;
        let mut with_nul = name.as_bytes().to_vec();
        with_nul.push(0);
        plan.event(
            11,
            EventType::IPL,
            format!("{name} section name"),
            vec![owned(with_nul)],
        );
        plan.event(
            11,
            EventType::IPL,
            format!("{name} section contents ({} bytes)", mem.len),
            mem.chunks(),
        );
    }
    let get = |name: &str| -> Result<Option<Memory<'a>>, PredictError> {
        family.find(pe, name).map(|s| memory(pe, s)).transpose()
    };
    sections.initrd = get(".initrd")?;
    sections.ucode = match family {
        StubFamily::V252 | StubFamily::V254 => None,
        StubFamily::V256 | StubFamily::V257 => get(".ucode")?,
    };
    sections.osrel = match family {
        StubFamily::V252 | StubFamily::V254 => None,
        StubFamily::V256 | StubFamily::V257 => get(".osrel")?,
    };
    sections.pcrsig = get(".pcrsig")?;
    sections.pcrpkey = get(".pcrpkey")?;
    Ok(sections)
}

/// PCR 9: the kernel's LoadOptions and initrd events. Returns the handed-over command line.
fn pcr9_events<'a>(
    plan: &mut Plan<'a>,
    pe: &Pe<'a>,
    family: StubFamily,
    sections: &UkiSections<'a>,
) -> Result<Option<String>, PredictError> {
    let cmdline_section = family
        .find(pe, ".cmdline")
        .map(|s| memory(pe, s).map(|m| m.to_vec()))
        .transpose()?;
    let units = family.cmdline_from_section(cmdline_section.as_deref());
    let text = units.as_deref().map(String::from_utf16_lossy);
    if let Some(u) = &units {
        let desc = format!(
            "LOADED_IMAGE::LoadOptions: {:?}",
            text.as_deref().unwrap_or("")
        );
        plan.event(
            9,
            EventType::EVENT_TAG,
            desc,
            vec![owned(load_options_bytes(u))],
        );
        mark_last(plan, KernelFeature::LoadOptions);
    }
    if let Some(chunks) = family.initrd_chunks(sections) {
        if chunks_len(&chunks) > 0 {
            let desc = format!(
                "Linux initrd: {}",
                initrd_description(family, sections, &chunks)
            );
            plan.event(9, EventType::EVENT_TAG, desc, chunks);
            mark_last(plan, KernelFeature::Initrd);
        }
    }
    Ok(text)
}

fn mark_last(plan: &mut Plan<'_>, needs: KernelFeature) {
    if let Some(e) = plan.events.last_mut() {
        e.needs = Some(needs);
    }
}

fn chunks_len(chunks: &[Chunk<'_>]) -> usize {
    chunks
        .iter()
        .map(|c| match c {
            Chunk::Bytes(b) => b.len(),
            Chunk::Zeros(n) => *n,
        })
        .sum()
}

fn initrd_description(family: StubFamily, s: &UkiSections<'_>, chunks: &[Chunk<'_>]) -> String {
    let late = matches!(family, StubFamily::V256 | StubFamily::V257);
    let parts: Vec<&str> = [
        (late && s.ucode.is_some(), ".ucode"),
        (s.initrd.is_some(), ".initrd"),
        (s.pcrsig.is_some(), ".pcrsig cpio"),
        (s.pcrpkey.is_some(), ".pcrpkey cpio"),
        (
            late && s.osrel.is_some(),
            ".osrel cpio (/.extra/os-release)",
        ),
    ]
    .into_iter()
    .filter_map(|(present, name)| present.then_some(name))
    .collect();
    format!("{} ({} bytes)", parts.join(" + "), chunks_len(chunks))
}
