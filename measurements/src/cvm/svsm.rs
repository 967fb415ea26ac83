//! The SEV-SNP launch digest of a COCONUT-SVSM guest (sev-snp-measure 0.0.13 `--mode snp:svsm`):
//! the OVMF code image (ending at 4 GiB), the SVSM image (ending below the OVMF vars), the SVSM's
//! own SEV metadata sections, then one identical 64-bit VMSA per vCPU starting at the SVSM entry.

use super::digest::{LaunchDigest, SnpMeasurement};
use super::error::{CvmError, Result};
use super::ovmf::Ovmf;
use super::snp::{metadata_pages, SnpLaunch};
use super::vcpu::VcpuSignature;
use super::vmsa::{svsm_save_area, GuestFeatures, VmmType};

/// An SVSM launch: the OVMF code image, the SVSM image and what sits between them.
#[derive(Debug, Clone, Copy)]
pub struct SvsmLaunch<'a> {
    /// The OVMF code image (`--ovmf`).
    pub ovmf: &'a [u8],
    /// The SVSM image (`--svsm`).
    pub svsm: &'a [u8],
    /// Size of the OVMF vars image mapped between them (`--vars-size`).
    pub vars_size: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// vCPU signature (RDX).
    pub vcpu_sig: VcpuSignature,
}

/// The launch digest of an SVSM guest (QEMU only; guest features are fixed at 0x1).
pub fn launch_digest(l: &SvsmLaunch) -> Result<SnpMeasurement> {
    let ovmf = Ovmf::parse(l.ovmf)?;
    ovmf.sev_metadata()?; // sev-snp-measure parses it too; a corrupt one is an error
    let end = ovmf
        .gpa()
        .checked_sub(l.vars_size)
        .ok_or(CvmError::FirmwareTooLarge {
            size: l.vars_size,
            end: ovmf.gpa(),
        })?;
    let svsm = Ovmf::parse_ending_at(l.svsm, end)?;
    let offset = svsm.svsm_entry_offset()?.ok_or(CvmError::MissingEntry {
        what: "SVSM information block",
        guid: "a789a612-0597-4c4b-a49f-cbb1fe9d1ddd",
        why: "it gives the SVSM entry point",
    })?;
    for image in [&ovmf, &svsm] {
        if image.bytes().len() % 4096 != 0 {
            return Err(CvmError::FirmwareSize {
                size: image.bytes().len() as u64,
            });
        }
    }
    let mut ld = LaunchDigest::new();
    ld.normal_pages(ovmf.gpa(), ovmf.bytes());
    ld.normal_pages(svsm.gpa(), svsm.bytes());
    let sections = svsm.sev_metadata()?;
    let rules = SnpLaunch {
        vcpus: l.vcpus,
        vcpu_sig: l.vcpu_sig,
        guest_features: GuestFeatures(1),
        vmm: VmmType::Qemu,
        kernel_hashes: None,
        ovmf_hash: None,
    };
    metadata_pages(&mut ld, &svsm, &sections, &rules)?;
    let vmsa = svsm_save_area(svsm.gpa() + u64::from(offset), l.vcpu_sig);
    for _ in 0..l.vcpus {
        ld.vmsa_page(&vmsa);
    }
    Ok(ld.finish().measurement())
}
