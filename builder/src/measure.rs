//! Measured boot for the builder: predicts the TPM PCRs a UKI produces (via the pure
//! `measurements::pcr` models) and maps them onto the manifest's `pcrs`, `pcr11_phases`,
//! `events` and `stub` fields; and finds the UKI inside a disk image in user space (GPT →
//! ESP → `\EFI\BOOT\BOOTX64.EFI`), without root or loop devices.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use measurements::manifest::{self, Manifest};
use measurements::pcr::{self, Bank, FirmwareProfile, Options};
use serde::Serialize;

use crate::{disk, esp};

/// Where the firmware finds the UKI on the ESP (removable-media default path).
pub const UKI_PATH: &str = "EFI/BOOT/BOOTX64.EFI";

/// Bank → PCR index (decimal string) or phase path → lowercase hex, as in the manifest.
pub type HexTable = BTreeMap<String, BTreeMap<String, String>>;

/// The stub a prediction was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StubSummary {
    /// The version from `.sdmagic`.
    pub version: String,
}

/// A prediction, shaped like the manifest fields it fills; serializes as the
/// `nodeimg measure … --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// `manifest.pcrs`: PCRs 4, 9, 11, 12 and 13 per bank.
    pub pcrs: HexTable,
    /// `manifest.pcr11_phases`: PCR 11 after systemd's boot phases, per bank.
    pub pcr11_phases: HexTable,
    /// `manifest.events`: the expected events in boot order.
    pub events: Vec<manifest::Event>,
    /// `manifest.stub` (the version; the manifest also records the stub file's digest).
    pub stub: StubSummary,
    /// The firmware profile PCR 4 was predicted for.
    pub firmware_profile: String,
    /// `manifest.secure_boot`: the Secure Boot state, enrolled lists and authorising db entry.
    pub secure_boot: manifest::SecureBoot,
    /// The full model output, for human-readable reports.
    #[serde(skip)]
    pub detail: pcr::Prediction,
}

/// The measurements crate's bank for a configured one.
pub fn bank(b: image_config::Bank) -> Bank {
    match b {
        image_config::Bank::Sha256 => Bank::Sha256,
        image_config::Bank::Sha384 => Bank::Sha384,
    }
}

/// Predicts the PCRs of `uki` booted as `\EFI\BOOT\BOOTX64.EFI` (the default OVMF firmware
/// profile) in `banks`, with Secure Boot as `sb` says.
pub fn predict_uki(
    uki: &[u8],
    banks: &[image_config::Bank],
    sb: &pcr::SecureBoot,
    gpt: Option<Vec<u8>>,
) -> Result<Prediction> {
    let opts = Options {
        banks: banks.iter().map(|&b| bank(b)).collect(),
        secure_boot: sb.clone(),
        gpt,
        ..Options::default()
    };
    predict_with(uki, &opts)
}

/// Like [`predict_uki`] with every option of the model.
pub fn predict_with(uki: &[u8], opts: &Options) -> Result<Prediction> {
    anyhow::ensure!(!opts.banks.is_empty(), "no PCR bank to predict");
    let p = pcr::predict(uki, opts).context("predicting the UKI's TPM measurements")?;
    let sb = secure_boot_summary(&opts.secure_boot, &p);
    Ok(shape(p, sb))
}

/// Maps the model output onto the manifest's field shapes.
fn shape(p: pcr::Prediction, secure_boot: manifest::SecureBoot) -> Prediction {
    let pcrs = p
        .pcrs
        .iter()
        .map(|(b, v)| {
            let vals = v.iter().map(|(i, d)| (i.to_string(), d.to_hex())).collect();
            (b.name().to_string(), vals)
        })
        .collect();
    let pcr11_phases = p
        .pcr11_phases
        .iter()
        .map(|(b, v)| {
            let vals = v
                .iter()
                .map(|(path, d)| (path.clone(), d.to_hex()))
                .collect();
            (b.name().to_string(), vals)
        })
        .collect();
    let events = p.events.iter().map(manifest_event).collect();
    Prediction {
        pcrs,
        pcr11_phases,
        events,
        stub: StubSummary {
            version: p.stub.version.clone(),
        },
        firmware_profile: p.firmware.name().to_string(),
        secure_boot,
        detail: p,
    }
}

/// One expected event in the manifest's shape.
pub fn manifest_event(e: &pcr::Event) -> manifest::Event {
    manifest::Event {
        pcr: e.pcr,
        event_type: e.event_type.name(),
        description: e.description.clone(),
        digests: e
            .digests
            .iter()
            .map(|(b, d)| (b.name().to_string(), d.to_hex()))
            .collect(),
    }
}

/// Fills `pcrs`, `pcr11_phases`, `events` and `secure_boot` of `m` (and checks
/// `stub.version`) for `uki` on a disk whose measured GPT is `gpt`; and the RTMRs of every
/// `tdx` entry (firmware layout `edk2`).
pub fn fill_manifest(
    m: &mut Manifest,
    uki: &[u8],
    gpt: Vec<u8>,
    banks: &[image_config::Bank],
    sb: &pcr::SecureBoot,
    edk2: Option<&str>,
) -> Result<()> {
    let p = predict_uki(uki, banks, sb, Some(gpt.clone()))?;
    if let (Some(entries), Some(layout)) = (m.tdx.as_mut(), edk2) {
        // RTMRs are SHA-384: predicted again only when the manifest's banks lack it.
        let sha384 = if p.detail.banks.contains(&Bank::Sha384) {
            None
        } else {
            Some(predict_uki(
                uki,
                &[image_config::Bank::Sha384],
                sb,
                Some(gpt),
            )?)
        };
        let rtmrs = tdx_rtmrs(
            &sha384.as_ref().unwrap_or(&p).detail,
            uki,
            layout,
            sb.enabled,
        )?;
        for e in entries {
            e.rtmrs = Some(rtmrs.clone());
        }
    }
    m.secure_boot = Some(p.secure_boot.clone());
    if !m.stub.version.is_empty() && m.stub.version != p.stub.version {
        anyhow::bail!(
            "the manifest names systemd-stub {} but the UKI's .sdmagic says {}",
            m.stub.version,
            p.stub.version
        );
    }
    m.stub.version = p.stub.version;
    m.pcrs = Some(p.pcrs);
    m.pcr11_phases = Some(p.pcr11_phases);
    m.events = Some(p.events);
    Ok(())
}

/// The RTMRs of booting `uki` as `p` predicts it (SHA-384 bank; with PCR 5 when the disk was
/// given) on TDVF with the separator layout named `layout`.
pub fn tdx_rtmrs(
    p: &pcr::Prediction,
    uki: &[u8],
    layout: &str,
    secure_boot: bool,
) -> Result<manifest::TdxRtmrs> {
    use measurements::cvm::rtmr;
    let l = rtmr::Edk2Layout::from_name(layout)
        .with_context(|| format!("unknown TDVF layout `{layout}` (edk2-202411 or edk2-202302)"))?;
    let release = measurements::pe::Pe::parse(uki)
        .ok()
        .and_then(|pe| pe.section_data(".uname").ok().flatten().map(<[u8]>::to_vec))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\0')
                .trim()
                .to_string()
        })
        .context(
            "the UKI has no .uname section: whether its kernel measures into RTMR2 (Linux ≥ 6.9) \
             is unknown",
        )?;
    let kernel_cc = rtmr::kernel_measures_cc(&release)
        .with_context(|| format!("the UKI's .uname `{release}` is not a kernel release"))?;
    let r = rtmr::predict(p, l, kernel_cc).context("predicting the TDX RTMRs")?;
    Ok(manifest::TdxRtmrs {
        edk2: l.name().to_string(),
        secure_boot,
        values: r
            .values
            .iter()
            .map(|(i, d)| (i.to_string(), d.to_hex()))
            .collect(),
        events: r
            .events
            .iter()
            .map(|e| manifest::CcEvent {
                rtmr: e.rtmr,
                pcr: e.pcr,
                event_type: e.event_type.name(),
                description: e.description.clone(),
                sha384: e.digest.to_hex(),
            })
            .collect(),
    })
}

/// Reads `nodeimg record-pcrs` files; each must name a known platform.
pub fn read_recorded(paths: &[PathBuf]) -> Result<Vec<measurements::platforms::Recorded>> {
    let mut out = Vec::new();
    for p in paths {
        let text = crate::infile::read_capped(p, 1 << 20, "recorded platform values")?;
        let r: measurements::platforms::Recorded = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a `nodeimg record-pcrs` file", p.display()))?;
        anyhow::ensure!(
            measurements::platforms::by_name(&r.platform).is_some(),
            "{}: unknown platform `{}`",
            p.display(),
            r.platform
        );
        out.push(r);
    }
    Ok(out)
}

/// The manifest's `secure_boot` for a prediction.
pub fn secure_boot_summary(sb: &pcr::SecureBoot, p: &pcr::Prediction) -> manifest::SecureBoot {
    use base64::Engine;
    use measurements::secureboot::{cert, esl};
    let k = &sb.keys;
    let variables = [
        ("PK", &k.pk),
        ("KEK", &k.kek),
        ("db", &k.db),
        ("dbx", &k.dbx),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(name, v)| {
        let certificates = esl::x509_entries(v)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| cert::parse(&e.data, name).ok())
            .map(|c| c.tbs_certificate.subject.to_string())
            .collect();
        let var = manifest::EnrolledVariable {
            sha256: crate::pipeline::output::sha256_hex(v),
            esl: base64::engine::general_purpose::STANDARD.encode(v),
            certificates,
        };
        (name.to_string(), var)
    })
    .collect();
    let authority = p.authority.as_ref().map(|e| manifest::Authority {
        owner: e.owner.to_string(),
        subject: cert::parse(&e.data, "db entry")
            .map(|c| c.tbs_certificate.subject.to_string())
            .unwrap_or_default(),
        certificate_sha256: crate::pipeline::output::sha256_hex(&e.data),
    });
    manifest::SecureBoot {
        enabled: sb.enabled,
        variables,
        authority,
    }
}

/// The Secure Boot state a manifest was predicted for (off when it does not say).
pub fn secure_boot_of(sb: Option<&manifest::SecureBoot>) -> Result<pcr::SecureBoot> {
    use base64::Engine;
    let Some(sb) = sb else {
        return Ok(pcr::SecureBoot::default());
    };
    let var = |name: &str| -> Result<Vec<u8>> {
        match sb.variables.get(name) {
            None => Ok(Vec::new()),
            Some(v) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&v.esl)
                    .with_context(|| format!("manifest secure_boot.variables.{name}.esl"))?;
                anyhow::ensure!(
                    crate::pipeline::output::sha256_hex(&bytes) == v.sha256,
                    "manifest secure_boot.variables.{name}: esl does not match its sha256"
                );
                Ok(bytes)
            }
        }
    };
    let keys = measurements::secureboot::pcr7::EnrolledKeys {
        pk: var("PK")?,
        kek: var("KEK")?,
        db: var("db")?,
        dbx: var("dbx")?,
    };
    keys.check().context("manifest secure_boot.variables")?;
    Ok(pcr::SecureBoot {
        enabled: sb.enabled,
        keys,
    })
}

/// A file's bytes: mapped (the page cache itself, no copy) or, where mapping fails, read.
#[derive(Debug)]
pub enum FileBytes {
    Mapped(crate::mmap::Mapping),
    Read(Vec<u8>),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m.bytes(),
            FileBytes::Read(v) => v,
        }
    }
}

/// A UKI file's bytes, mapped; where that fails, read with one thread per core, each into its
/// own slice of the buffer (the copy out of the page cache is what limits a plain read, and it
/// parallelises). Files over 1 GiB (`infile::UKI_MAX`) are refused: no UKI is that large, and a
/// sparse file claiming terabytes must not cost that much time or memory.
pub fn read_uki(path: &Path) -> Result<FileBytes> {
    use std::os::unix::fs::FileExt;
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let meta = f.metadata()?;
    anyhow::ensure!(
        meta.is_file(),
        "{}: not a regular file; give the UKI file",
        path.display()
    );
    let size = meta.len();
    anyhow::ensure!(
        size <= crate::infile::UKI_MAX,
        "{}: {size} bytes; a UKI is at most {} bytes here (is this the right file?)",
        path.display(),
        crate::infile::UKI_MAX
    );
    let len = size as usize;
    if let Some(m) = crate::mmap::Mapping::new(&f, size, 0, len) {
        return Ok(FileBytes::Mapped(m));
    }
    let mut buf = vec![0u8; len];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = len.div_ceil(threads).max(1 << 20);
    std::thread::scope(|s| {
        let parts: Vec<_> = buf
            .chunks_mut(chunk)
            .enumerate()
            .map(|(i, part)| {
                let f = &f;
                s.spawn(move || f.read_exact_at(part, (i * chunk) as u64))
            })
            .collect();
        parts.into_iter().try_for_each(|p| {
            p.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
    .with_context(|| format!("reading {}", path.display()))?;
    Ok(FileBytes::Read(buf))
}

/// What a PCR prediction needs from a disk image.
#[derive(Debug)]
pub struct DiskBoot {
    /// `\EFI\BOOT\BOOTX64.EFI` from the ESP.
    pub uki: Vec<u8>,
    /// The `UEFI_GPT_DATA` the firmware measures into PCR 5.
    pub gpt: Vec<u8>,
}

/// Reads `\EFI\BOOT\BOOTX64.EFI` from the ESP of the GPT disk image at `path`, and the GPT,
/// for a PCR prediction: refused when the ESP also holds files systemd-stub would measure (see
/// [`stub_measured_extras`]), since the prediction covers the UKI alone.
pub fn uki_from_disk(path: &Path) -> Result<DiskBoot> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let table = disk::read_table(&mut f)
        .with_context(|| format!("reading the GPT of {}", path.display()))?;
    let parts = table.partitions;
    let esp_part = esp_partition(&parts)?;
    // Names only: the UKI's bytes are read once, below.
    let listing = esp::list_names(esp::Window::new(&f, esp_part.offset, esp_part.size))
        .with_context(|| format!("listing the ESP of {}", path.display()))?;
    let extras = stub_measured_extras(&listing);
    anyhow::ensure!(
        extras.is_empty(),
        "the ESP of {} holds files systemd-stub measures (credentials and add-ons into PCR 12, \
         system/configuration extensions into PCR 13) that nodeimg does not predict: {}; the \
         PCRs would not be what the UKI alone gives (remove them, or predict the UKI alone with \
         `nodeimg measure uki`)",
        path.display(),
        extras.join(", ")
    );
    let uki = uki_from_disk_file(&f, &parts)
        .with_context(|| format!("reading the UKI from {}", path.display()))?;
    Ok(DiskBoot {
        uki,
        gpt: table.measured,
    })
}

/// ESP files systemd-stub picks up beside a UKI booted as `\EFI\BOOT\BOOTX64.EFI` and measures:
/// anything in `\EFI\BOOT\BOOTX64.EFI.extra.d\` (`*.cred`, `*.addon.efi`, `*.sysext.raw`,
/// `*.confext.raw`), `\loader\credentials\*.cred` and `\loader\addons\*.addon.efi` (FAT
/// names compare case-insensitively). Paths as `/`-separated, from the root.
pub fn stub_measured_extras(listing: &esp::Listing) -> Vec<String> {
    const DIRS: [&str; 3] = [
        "efi/boot/bootx64.efi.extra.d/",
        "loader/credentials/",
        "loader/addons/",
    ];
    listing
        .items
        .iter()
        .filter(|(_, item)| matches!(item, esp::Item::File { .. }))
        .map(|(path, _)| path)
        .filter(|path| {
            let lower = path.to_ascii_lowercase();
            DIRS.iter().any(|d| lower.starts_with(d))
        })
        .map(|p| format!("/{p}"))
        .collect()
}

fn esp_partition(parts: &[disk::PartInfo]) -> Result<&disk::PartInfo> {
    parts
        .iter()
        .find(|p| p.type_guid == disk::TYPE_ESP)
        .with_context(|| {
            format!(
                "no ESP partition (type {})",
                disk::guid_to_string(&disk::TYPE_ESP)
            )
        })
}

/// Reads `\EFI\BOOT\BOOTX64.EFI` from the ESP among `parts` of the open disk image `f`.
pub fn uki_from_disk_file(f: &File, parts: &[disk::PartInfo]) -> Result<Vec<u8>> {
    let esp_part = esp_partition(parts)?;
    esp::read_file(
        esp::Window::new(f, esp_part.offset, esp_part.size),
        UKI_PATH,
    )
    .context("reading \\EFI\\BOOT\\BOOTX64.EFI from the ESP")
}

/// The firmware profile named `name` (for the command line).
pub fn firmware_profile(name: &str) -> Result<FirmwareProfile> {
    FirmwareProfile::from_name(name).with_context(|| {
        let known: Vec<&str> = FirmwareProfile::ALL.iter().map(|p| p.name()).collect();
        format!(
            "unknown firmware profile {name:?} (known: {})",
            known.join(", ")
        )
    })
}
