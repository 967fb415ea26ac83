//! `nodeimg measure uki UKI` and `nodeimg measure disk DISK`: the TPM PCRs 4, 7, 9, 11, 12 and 13
//! a UKI produces when the firmware boots it as `\EFI\BOOT\BOOTX64.EFI`, per bank, the PCR 11
//! boot-phase values and the expected event log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use measurements::pcr::{Bank, Options, DEFAULT_PHASE_PATHS, PREDICTED_PCRS};
use serde_json::json;

use crate::cli::Globals;
use crate::measure::{self, Prediction};

/// Options shared by `measure uki` and `measure disk`.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// PCR banks to compute (comma-separated).
    #[arg(long = "bank", value_name = "BANKS", value_delimiter = ',', default_value = "sha256,sha384", value_parser = parse_bank)]
    pub banks: Vec<Bank>,
    /// Firmware behaviour before the UKI runs: `ovmf` (first boot option is the disk) or
    /// `ovmf-boot-retry` (one boot option failed first).
    #[arg(long, value_name = "PROFILE", default_value = "ovmf")]
    pub firmware: String,
    /// Output format: `manifest` (text, or with --json the manifest's `pcrs`, `pcr11_phases`,
    /// `events` and `stub` keys), `constellation` (`{"measurements":{"4":{"expected":…,
    /// "warnOnly":false},…}}`, SHA-256 bank) or `nitro` (nitro-tpm-pcr-compute's JSON:
    /// SHA-384 PCR 4, 7, 12).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Manifest)]
    pub format: Format,
    /// PCRs to predict (comma-separated, of 4, 5, 7, 9, 11, 12, 13): only their events are
    /// hashed and reported (`--pcr 11` is the work `systemd-measure calculate` does). PCR 5 (the
    /// GPT and ExitBootServices) only for `measure disk` [default: all of them; `measure uki`
    /// leaves out 5].
    #[arg(long = "pcr", value_name = "PCRS", value_delimiter = ',', value_parser = parse_pcr)]
    pub pcrs: Vec<u32>,
    /// Predict with Secure Boot enforcing and the keys of a `nodeimg keygen --secure-boot`
    /// directory enrolled (its PK.esl, KEK.esl, db.esl, dbx.esl). The UKI must be signed by
    /// a db key. Without this (and without --pk …): Secure Boot off, nothing enrolled.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["pk", "kek", "db", "dbx"])]
    pub secure_boot: Option<PathBuf>,
    /// With Secure Boot enforcing: the enrolled PK as an EFI_SIGNATURE_LIST file (with --kek
    /// and --db; as nitro-tpm-pcr-compute takes them).
    #[arg(long = "pk", value_name = "ESL", requires_all = ["kek", "db"])]
    pub pk: Option<PathBuf>,
    /// The enrolled KEK (EFI_SIGNATURE_LIST).
    #[arg(long = "kek", value_name = "ESL", requires_all = ["pk", "db"])]
    pub kek: Option<PathBuf>,
    /// The enrolled db (EFI_SIGNATURE_LIST).
    #[arg(long = "db", value_name = "ESL", requires_all = ["pk", "kek"])]
    pub db: Option<PathBuf>,
    /// The enrolled dbx (EFI_SIGNATURE_LIST) [default: none enrolled].
    #[arg(long = "dbx", value_name = "ESL", requires = "db")]
    pub dbx: Option<PathBuf>,
}

impl Common {
    /// The Secure Boot state the options describe.
    pub fn secure_boot(&self) -> Result<measurements::pcr::SecureBoot> {
        let keys = match (&self.secure_boot, &self.pk, &self.kek, &self.db) {
            (Some(dir), ..) => crate::secureboot::read_enrolled_dir(dir)
                .with_context(|| format!("--secure-boot {}", dir.display()))?,
            (None, Some(pk), Some(kek), Some(db)) => {
                crate::secureboot::read_enrolled(pk, kek, db, self.dbx.as_deref())?
            }
            _ => return Ok(measurements::pcr::SecureBoot::default()),
        };
        Ok(measurements::pcr::SecureBoot {
            enabled: true,
            keys,
        })
    }
}

fn parse_pcr(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if PREDICTED_PCRS.contains(&n) => Ok(n),
        _ => Err(format!(
            "PCR {s:?} is not one nodeimg predicts (4, 5, 7, 9, 11, 12, 13)"
        )),
    }
}

/// Output format of `nodeimg measure uki|disk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text, or the manifest fields with `--json`.
    Manifest,
    /// Constellation's `measurements` JSON.
    Constellation,
    /// What AWS's `nitro-tpm-pcr-compute` prints for NitroTPM: SHA-384 PCR 4, 7 and 12
    /// (`{"Measurements":{"HashAlgorithm":"SHA384","PCR4":…,"PCR7":…,"PCR12":…}}`).
    Nitro,
    /// Every platform's reference values (the manifest's `platforms`): each PCR's value or
    /// where it must come from, and whether to enforce it.
    Reference,
}

fn parse_bank(s: &str) -> Result<Bank, String> {
    Bank::from_name(s).ok_or_else(|| format!("unknown PCR bank {s:?} (expected sha256 or sha384)"))
}

/// PCR 4/7/9/11/12/13 and boot phases for a UKI file.
#[derive(Debug, clap::Args)]
pub struct UkiArgs {
    /// The Unified Kernel Image (e.g. uki.efi from `nodeimg build`).
    #[arg(value_name = "UKI")]
    pub uki: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

/// The same, reading the UKI out of a disk image's ESP (no root, no loop devices).
#[derive(Debug, clap::Args)]
pub struct DiskArgs {
    /// A GPT disk image whose ESP holds \EFI\BOOT\BOOTX64.EFI (disk.raw).
    #[arg(value_name = "DISK")]
    pub disk: PathBuf,
    #[command(flatten)]
    pub common: Common,
}

pub fn run_uki(a: UkiArgs, g: Globals) -> Result<ExitCode> {
    let t = std::time::Instant::now();
    let uki = measure::read_uki(&a.uki)?;
    tracing::info!(
        seconds = t.elapsed().as_secs_f64(),
        bytes = uki.len(),
        "read the UKI"
    );
    if a.common.pcrs.contains(&5) {
        anyhow::bail!(
            "--pcr 5: PCR 5 measures the disk's GPT, which a UKI alone does not have; use \
             `nodeimg measure disk DISK --pcr 5`"
        );
    }
    report(&uki, None, &a.uki, &a.common, g)
}

pub fn run_disk(a: DiskArgs, g: Globals) -> Result<ExitCode> {
    let disk = measure::uki_from_disk(&a.disk)?;
    report(&disk.uki, Some(disk.gpt), &a.disk, &a.common, g)
}

fn report(
    uki: &[u8],
    gpt: Option<Vec<u8>>,
    source: &Path,
    c: &Common,
    g: Globals,
) -> Result<ExitCode> {
    let mut banks = c.banks.clone();
    banks.sort();
    banks.dedup();
    let opts = Options {
        banks,
        firmware: measure::firmware_profile(&c.firmware)?,
        phase_paths: DEFAULT_PHASE_PATHS.iter().map(|s| s.to_string()).collect(),
        pcrs: if c.pcrs.is_empty() {
            PREDICTED_PCRS.to_vec()
        } else {
            c.pcrs.clone()
        },
        secure_boot: c.secure_boot()?,
        gpt,
    };
    let t = std::time::Instant::now();
    let p = measure::predict_with(uki, &opts)
        .with_context(|| format!("measuring {}", source.display()))?;
    tracing::info!(
        seconds = t.elapsed().as_secs_f64(),
        "predicted the measurements"
    );
    match c.format {
        Format::Constellation => println!("{}", serde_json::to_string_pretty(&constellation(&p)?)?),
        Format::Nitro => println!("{}", serde_json::to_string_pretty(&nitro(&p)?)?),
        Format::Reference => println!(
            "{}",
            serde_json::to_string_pretty(&measurements::platforms::reference_values(&p.pcrs, &[]))?
        ),
        Format::Manifest if g.json => println!("{}", serde_json::to_string_pretty(&p)?),
        Format::Manifest => print_human(&p, source),
    }
    Ok(ExitCode::SUCCESS)
}

/// Constellation's measurements map: every predicted PCR of the SHA-256 bank, enforced.
fn constellation(p: &Prediction) -> Result<serde_json::Value> {
    let pcrs = p.pcrs.get("sha256").context(
        "--format constellation needs the sha256 bank (Constellation's vTPM values are SHA-256)",
    )?;
    let mut m = serde_json::Map::new();
    for (index, value) in pcrs {
        m.insert(
            index.clone(),
            json!({ "expected": value, "warnOnly": false }),
        );
    }
    Ok(json!({ "measurements": m }))
}

/// nitro-tpm-pcr-compute's JSON: the SHA-384 PCRs 4, 7 and 12 a NitroTPM boot of this UKI
/// shows (AWS's UEFI measures the UKI as OVMF does; AWS documents PCR 4, 7 and 12 as the ones
/// to pin for a UKI).
fn nitro(p: &Prediction) -> Result<serde_json::Value> {
    let pcrs = p
        .pcrs
        .get("sha384")
        .context("--format nitro needs the sha384 bank (NitroTPM reference values are SHA-384)")?;
    let get = |i: &str| {
        pcrs.get(i).with_context(|| {
            format!("--format nitro needs PCR {i} (give --pcr 4,7,12 or the default)")
        })
    };
    Ok(json!({ "Measurements": {
        "HashAlgorithm": "SHA384",
        "PCR4": get("4")?,
        "PCR7": get("7")?,
        "PCR12": get("12")?,
    }}))
}

fn print_human(p: &Prediction, source: &Path) {
    let d = &p.detail;
    println!(
        "{}: systemd-stub {}, firmware profile {} ({})",
        source.display(),
        d.stub.version,
        d.firmware,
        match &d.authority {
            Some(e) => format!(
                "Secure Boot on, authorised by the db entry of owner {}",
                e.owner
            ),
            None => "Secure Boot off".to_string(),
        }
    );
    println!("command line: {}", d.cmdline.as_deref().unwrap_or("(none)"));
    for b in &d.banks {
        if let (Some(u), Some(k)) = (d.uki_authenticode.get(b), d.kernel_authenticode.get(b)) {
            println!("authenticode {b}: UKI {u} kernel {k}");
        }
    }
    for b in &d.banks {
        println!("PCRs ({b}):");
        for (i, v) in &d.pcrs[b] {
            println!("  {i:>2}  {v}");
        }
    }
    if !d.pcr11_phases.is_empty() {
        println!("PCR 11 after systemd boot phases (nodeimg-init itself measures none):");
    }
    for (b, phases) in &d.pcr11_phases {
        for (path, v) in phases {
            println!("  {b} {path:<40} {v}");
        }
    }
    println!("expected events:");
    for e in &d.events {
        let first = d
            .banks
            .first()
            .and_then(|b| e.digests.get(b).map(|x| (b, x)));
        let digest = first.map_or(String::new(), |(b, x)| format!("{b} {x}"));
        println!(
            "  PCR {:>2} {:<32} {}  {}",
            e.pcr,
            e.event_type.name(),
            digest,
            e.description
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn args_parse() {
        let cli = crate::cli::Cli::try_parse_from([
            "nodeimg",
            "measure",
            "uki",
            "u.efi",
            "--bank",
            "sha384,sha256",
            "--format",
            "constellation",
        ])
        .unwrap();
        let crate::cli::Command::Measure(m) = cli.command else {
            panic!()
        };
        let crate::cli::measure::What::Uki(a) = m.what else {
            panic!()
        };
        assert_eq!(a.common.banks, [Bank::Sha384, Bank::Sha256]);
        assert_eq!(a.common.format, Format::Constellation);
        assert_eq!(a.common.firmware, "ovmf");
        let err =
            crate::cli::Cli::try_parse_from(["nodeimg", "measure", "disk", "d", "--bank", "md5"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("unknown PCR bank \"md5\""), "{err}");
    }
}
