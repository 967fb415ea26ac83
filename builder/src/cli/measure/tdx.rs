//! `nodeimg measure tdx`: the TDX MRTD of a firmware image (lowercase hex alone on stdout;
//! `--json` for an object), and with `--disk`/`--uki` the RTMRs a TD booting the image reports.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use measurements::cvm::{tdx, MrtdOrder, Ovmf};
use measurements::manifest::TdxEntry;
use sha2::{Digest as _, Sha256};

use crate::cli::Globals;
use crate::measure;

/// Intel TDX MRTD of a TDVF firmware, and RTMR 1–3 of booting an image with it.
///
/// With `--disk` (or `--uki`: no RTMR1, which measures the disk's GPT) also the runtime
/// registers a TD without vTPM reports after TDVF boots the image's UKI: RTMR0 is the
/// platform's (TD HOB, firmware volume, ACPI tables, variables: record it from a real TD),
/// RTMR1 the boot path (GPT, UKI, kernel, ExitBootServices), RTMR2 what systemd-stub ≥ 256 and
/// Linux ≥ 6.9 measure through the CC protocol, RTMR3 nothing. See docs/cvm.md.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The -bios firmware image (a unified OVMF.fd; CODE-only files carry unusable offsets).
    #[arg(long, value_name = "PATH")]
    pub ovmf: PathBuf,
    /// Order the records per section (Intel's QEMU 8.x TDX stack) instead of per page
    /// (upstream KVM with QEMU ≥ 9).
    #[arg(long)]
    pub two_pass: bool,
    /// A GPT disk image whose ESP holds \EFI\BOOT\BOOTX64.EFI (disk.raw): predict RTMR 1–3.
    #[arg(long, value_name = "DISK", conflicts_with = "uki")]
    pub disk: Option<PathBuf>,
    /// A UKI alone: predict RTMR 2–3 (RTMR1 needs the disk's GPT).
    #[arg(long, value_name = "UKI")]
    pub uki: Option<PathBuf>,
    /// The firmware's separator layout: `edk2-202411` (edk2 ≤ stable202211 or ≥ stable202411)
    /// or `edk2-202302` (stable202302 … stable202408.01).
    #[arg(long, value_name = "LAYOUT", default_value = "edk2-202411", value_parser = ["edk2-202411", "edk2-202302"])]
    pub edk2: String,
    /// Secure Boot enforcing with the keys of a `nodeimg keygen --secure-boot` directory (the
    /// UKI must be signed by its db key).
    #[arg(long, value_name = "DIR")]
    pub secure_boot: Option<PathBuf>,
}

pub fn run(a: Args, g: Globals) -> Result<ExitCode> {
    let bytes = std::fs::read(&a.ovmf).with_context(|| format!("reading {}", a.ovmf.display()))?;
    let order = if a.two_pass {
        MrtdOrder::TwoPass
    } else {
        MrtdOrder::SinglePass
    };
    let mrtd = Ovmf::parse(&bytes)
        .and_then(|fw| tdx::mrtd(&fw, order))
        .with_context(|| format!("computing the TDX MRTD of {}", a.ovmf.display()))?;
    let (uki, gpt, source) = match (&a.disk, &a.uki) {
        (Some(d), _) => {
            let disk = measure::uki_from_disk(d)?;
            (Some(measure::FileBytes::Read(disk.uki)), Some(disk.gpt), d)
        }
        (None, Some(u)) => (Some(measure::read_uki(u)?), None, u),
        (None, None) => (None, None, &a.ovmf),
    };
    let rtmrs = match uki {
        Some(uki) => {
            let sb = match &a.secure_boot {
                Some(dir) => measurements::pcr::SecureBoot {
                    enabled: true,
                    keys: crate::secureboot::read_enrolled_dir(dir)
                        .with_context(|| format!("--secure-boot {}", dir.display()))?,
                },
                None => measurements::pcr::SecureBoot::default(),
            };
            let p = measure::predict_uki(&uki, &[image_config::Bank::Sha384], &sb, gpt)
                .with_context(|| format!("measuring {}", source.display()))?;
            Some(measure::tdx_rtmrs(&p.detail, &uki, &a.edk2, sb.enabled)?)
        }
        None => None,
    };
    let entry = TdxEntry {
        ovmf_sha256: hex::encode(Sha256::digest(&bytes)),
        mrtd: mrtd.hex(),
        two_pass: a.two_pass,
        rtmrs,
    };
    if g.json {
        println!("{}", serde_json::to_string_pretty(&entry)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(r) = &entry.rtmrs else {
        println!("{mrtd}");
        return Ok(ExitCode::SUCCESS);
    };
    println!("MRTD   {mrtd}");
    println!("RTMR0  (the platform's: TD HOB, firmware volume, ACPI tables, variables; record it from a TD)");
    for i in ["1", "2", "3"] {
        match r.values.get(i) {
            Some(v) => println!("RTMR{i}  {v}"),
            None => println!("RTMR{i}  (needs the disk's GPT: give --disk)"),
        }
    }
    println!(
        "firmware layout {}, Secure Boot {}",
        r.edk2,
        if r.secure_boot { "on" } else { "off" }
    );
    println!("expected CC event log (RTMR 1–3):");
    for e in &r.events {
        println!(
            "  RTMR{} (PCR {:>2}) {:<32} {}  {}",
            e.rtmr, e.pcr, e.event_type, e.sha384, e.description
        );
    }
    Ok(ExitCode::SUCCESS)
}
