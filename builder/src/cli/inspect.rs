//! `nodeimg inspect DISK`: partitions, UKI sections, cmdline, stub version, root hash and
//! whether the verity tree verifies — read entirely in user space (no root, no loop devices).

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::Globals;
use crate::{disk, measure, uki, verity};

/// Show what a disk image holds and check its verity tree.
///
/// Lists partitions, UKI sections, stub version, command line and root hash, and checks the
/// verity tree against the UKI's roothash= (exit 1 if it does not verify).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A disk image written by `nodeimg build` (disk.raw).
    #[arg(value_name = "DISK")]
    pub disk: PathBuf,
}

#[derive(Debug, Serialize)]
struct Report {
    partitions: Vec<disk::PartInfo>,
    uki: uki::UkiInfo,
    root_hash: Option<String>,
    /// The UKI's Authenticode signers (certificate subjects), one entry per signature; empty
    /// when unsigned, or the reason the signature table cannot be read.
    signers: Vec<String>,
    /// Why the signature table could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_error: Option<String>,
    /// `ok`, or what failed.
    verity: String,
    verity_ok: bool,
}

pub fn run(args: Args, g: Globals) -> Result<ExitCode> {
    let report =
        inspect(&args.disk).with_context(|| format!("inspecting {}", args.disk.display()))?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    Ok(if report.verity_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn inspect(path: &std::path::Path) -> Result<Report> {
    let mut f = File::open(path)?;
    let parts = disk::read(&mut f).context("reading the GPT")?;
    let uki_bytes = measure::uki_from_disk_file(&f, &parts)?;
    let info = uki::read(&uki_bytes)?;
    let signers = measurements::secureboot::authenticode::signer_certificates(&uki_bytes)
        .map(|sigs| {
            sigs.iter()
                .map(|certs| {
                    certs
                        .iter()
                        .map(|c| c.tbs_certificate.subject.to_string())
                        .collect::<Vec<_>>()
                        .join(" / ")
                })
                .collect()
        })
        .map_err(|e| e.to_string());
    let (signers, signature_error) = match signers {
        Ok(s) => (s, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let root_hash = info.cmdline.as_deref().and_then(|c| {
        c.split_whitespace()
            .find_map(|a| a.strip_prefix("roothash="))
            .map(str::to_string)
    });
    let verity = match &root_hash {
        None => Err(anyhow::anyhow!("the UKI's .cmdline has no roothash=")),
        Some(rh) => check_verity(&f, &parts, rh),
    };
    Ok(Report {
        partitions: parts,
        uki: info,
        root_hash,
        signers,
        signature_error,
        verity_ok: verity.is_ok(),
        verity: verity.map_or_else(|e| format!("{e:#}"), |()| "ok".into()),
    })
}

/// Finds root and verity partitions (by type), checks their UUIDs are the DPS derivation
/// from the root hash, and recomputes the tree.
fn check_verity(f: &File, parts: &[disk::PartInfo], root_hash: &str) -> Result<()> {
    let rh = hex::decode(root_hash).context("roothash= is not hex")?;
    if rh.len() != 32 {
        bail!("roothash= has {} bytes, expected 32 (sha256)", rh.len());
    }
    let get = |t| parts.iter().find(|p| p.type_guid == t);
    let (Some(root), Some(hash)) = (
        get(disk::TYPE_ROOT_X86_64),
        get(disk::TYPE_ROOT_VERITY_X86_64),
    ) else {
        bail!("no root-x86-64 and root-x86-64-verity partitions");
    };
    if root.unique_guid[..] != rh[..16] || hash.unique_guid[..] != rh[16..] {
        bail!(
            "partition UUIDs are not derived from the root hash (root {}, verity {})",
            disk::guid_to_string(&root.unique_guid),
            disk::guid_to_string(&hash.unique_guid)
        );
    }
    let region = |p: &disk::PartInfo| verity::Region {
        file: f,
        offset: p.offset,
        len: p.size,
    };
    verity::verify(region(root), region(hash), &rh)
}

fn print_human(r: &Report) {
    println!("partitions:");
    for p in &r.partitions {
        let ty = disk::type_name(&p.type_guid)
            .map_or_else(|| disk::guid_to_string(&p.type_guid), str::to_string);
        println!(
            "  {} {:<20} {:<20} {} offset {} size {}",
            p.number,
            p.name,
            ty,
            disk::guid_to_string(&p.unique_guid),
            p.offset,
            p.size
        );
    }
    println!("uki sections:");
    for s in &r.uki.sections {
        println!(
            "  {:<9} vsize {:#10x} va {:#10x} raw {:#10x} @ {:#10x}",
            s.name, s.virtual_size, s.virtual_address, s.size_of_raw_data, s.pointer_to_raw_data
        );
    }
    println!(
        "stub:      systemd-stub {}",
        r.uki
            .stub_version
            .as_deref()
            .unwrap_or("(unknown: no .sdmagic)")
    );
    println!("uname:     {}", r.uki.uname.as_deref().unwrap_or("-"));
    println!("cmdline:   {}", r.uki.cmdline.as_deref().unwrap_or("-"));
    match (&r.signature_error, r.signers.is_empty()) {
        (Some(e), _) => println!("signed:    unreadable signature table: {e}"),
        (None, true) => println!("signed:    no (no Authenticode signature)"),
        (None, false) => println!("signed:    {}", r.signers.join("; ")),
    }
    println!("root hash: {}", r.root_hash.as_deref().unwrap_or("-"));
    println!("verity:    {}", r.verity);
}
