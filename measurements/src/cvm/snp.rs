//! The SEV-SNP launch digest: firmware pages (NORMAL), then the SEV metadata sections, then one
//! VMSA per vCPU, each folded into `LD = SHA-384(PAGE_INFO)`. Mirrors sev-snp-measure 0.0.13
//! (`--mode snp`, `--mode snp:ovmf-hash`) for QEMU, ec2 and gce.

use super::digest::{LaunchDigest, OvmfHash, PageType, SnpMeasurement, Updating};
use super::error::{CvmError, Result};
use super::hashes::SevHashes;
use super::ovmf::Ovmf;
use super::sevmeta::{SevSection, SevSectionKind};
use super::vcpu::VcpuSignature;
use super::vmsa::{GuestFeatures, VmmType, Vmsas};

const PAGE: u32 = 4096;

/// Everything besides the firmware that an SNP launch digest depends on.
#[derive(Debug, Clone)]
pub struct SnpLaunch {
    /// Number of vCPUs (one VMSA page each).
    pub vcpus: u32,
    /// vCPU signature written to RDX (QEMU only; ec2 and gce use 0x600).
    pub vcpu_sig: VcpuSignature,
    /// SEV_FEATURES (sev-snp-measure's default is 0x1).
    pub guest_features: GuestFeatures,
    /// Hypervisor flavour.
    pub vmm: VmmType,
    /// Measured direct boot: the kernel hashes page. Needs an `SNP_KERNEL_HASHES` section.
    pub kernel_hashes: Option<SevHashes>,
    /// Start from this firmware hash instead of hashing the firmware pages
    /// (`--snp-ovmf-hash`); the firmware is still read for its metadata and AP entry point.
    pub ovmf_hash: Option<OvmfHash>,
}

/// The launch digest after the firmware pages only (`--mode snp:ovmf-hash`).
pub fn ovmf_hash(fw: &Ovmf) -> Result<OvmfHash> {
    let mut ld = LaunchDigest::new();
    firmware_pages(&mut ld, fw)?;
    Ok(ld.finish().ovmf_hash())
}

/// The SEV-SNP launch digest of `fw` started as `launch` describes.
pub fn launch_digest(fw: &Ovmf, launch: &SnpLaunch) -> Result<SnpMeasurement> {
    let sections = fw.sev_metadata()?;
    let vmsas = vmsas(
        fw,
        launch.vcpus,
        launch.guest_features,
        launch.vcpu_sig,
        launch.vmm,
    )?;
    let mut ld = match &launch.ovmf_hash {
        Some(h) => LaunchDigest::seeded(h),
        None => {
            let mut ld = LaunchDigest::new();
            firmware_pages(&mut ld, fw)?;
            ld
        }
    };
    metadata_pages(&mut ld, fw, &sections, launch)?;
    for v in 0..launch.vcpus {
        let page = vmsas.page(v).ok_or(CvmError::NoApEntry {
            vcpus: launch.vcpus,
        })?;
        ld.vmsa_page(page);
    }
    Ok(ld.finish().measurement())
}

/// The VMSA pages of `fw` for `vcpus` vCPUs (an AP entry point is required when `vcpus > 1`).
pub fn vmsas(
    fw: &Ovmf,
    vcpus: u32,
    features: GuestFeatures,
    sig: VcpuSignature,
    vmm: VmmType,
) -> Result<Vmsas> {
    let eip = fw.sev_es_reset_eip()?.ok_or(CvmError::MissingEntry {
        what: "SEV-ES reset block",
        guid: "00f771de-1a7e-4fcb-890e-68c77e2fb44e",
        why: "it gives the AP entry point of the VMSAs",
    })?;
    if eip == 0 && vcpus > 1 {
        return Err(CvmError::NoApEntry { vcpus });
    }
    Ok(Vmsas::new(eip, features, sig, vmm))
}

fn firmware_pages(ld: &mut LaunchDigest<Updating>, fw: &Ovmf) -> Result<()> {
    let data = fw.bytes();
    if !data.len().is_multiple_of(PAGE as usize) {
        return Err(CvmError::FirmwareSize {
            size: data.len() as u64,
        });
    }
    ld.normal_pages(fw.gpa(), data);
    Ok(())
}

pub(crate) fn metadata_pages(
    ld: &mut LaunchDigest<Updating>,
    fw: &Ovmf,
    sections: &[SevSection],
    launch: &SnpLaunch,
) -> Result<()> {
    check_total(sections)?;
    let mut has_kernel_hashes = false;
    for (index, s) in sections.iter().enumerate() {
        let err = |why: String| CvmError::SevSection {
            index,
            gpa: s.gpa,
            size: s.size,
            kind: s.kind,
            why,
        };
        let kind = s.kind().ok_or_else(|| err("unknown section type".into()))?;
        has_kernel_hashes |= kind == SevSectionKind::KernelHashes;
        section(ld, fw, s, kind, launch).map_err(err)?;
    }
    if launch.vmm == VmmType::Ec2 {
        for s in sections
            .iter()
            .filter(|s| s.kind() == Some(SevSectionKind::Cpuid))
        {
            ld.update(PageType::Cpuid, u64::from(s.gpa), &[0; 48]);
        }
    }
    if launch.kernel_hashes.is_some() && !has_kernel_hashes {
        return Err(CvmError::NoKernelHashes {
            why: "OVMF metadata doesn't include SNP_KERNEL_HASHES section",
        });
    }
    Ok(())
}

/// Refuses section lists that cover more than the 4 GiB a 32-bit GPA can reach (corrupt
/// metadata would otherwise mean billions of page updates).
fn check_total(sections: &[SevSection]) -> Result<()> {
    let mut total = 0u64;
    for (index, s) in sections.iter().enumerate() {
        total += u64::from(s.size);
        if total > 1 << 32 {
            return Err(CvmError::SevSection {
                index,
                gpa: s.gpa,
                size: s.size,
                kind: s.kind,
                why: "the sections up to this one cover more than 4 GiB".into(),
            });
        }
    }
    Ok(())
}

fn section(
    ld: &mut LaunchDigest<Updating>,
    fw: &Ovmf,
    s: &SevSection,
    kind: SevSectionKind,
    launch: &SnpLaunch,
) -> std::result::Result<(), String> {
    let gpa = u64::from(s.gpa);
    let pages = |ld: &mut LaunchDigest<Updating>, ty: PageType| {
        if !s.size.is_multiple_of(PAGE) {
            return Err("size is not a multiple of 4096".to_string());
        }
        ld.empty_pages(ty, gpa, u64::from(s.size));
        Ok(())
    };
    let single = |ld: &mut LaunchDigest<Updating>, ty: PageType| {
        ld.update(ty, gpa, &[0; 48]);
        Ok(())
    };
    match kind {
        SevSectionKind::SecMem if launch.vmm == VmmType::Gce => pages(ld, PageType::Unmeasured),
        SevSectionKind::SecMem | SevSectionKind::SvsmCaa => pages(ld, PageType::Zero),
        SevSectionKind::Secrets => single(ld, PageType::Secrets),
        SevSectionKind::Cpuid if launch.vmm == VmmType::Ec2 => Ok(()),
        SevSectionKind::Cpuid => single(ld, PageType::Cpuid),
        SevSectionKind::KernelHashes => match &launch.kernel_hashes {
            None => pages(ld, PageType::Zero),
            Some(h) => kernel_hashes_page(ld, fw, s, h),
        },
    }
}

fn kernel_hashes_page(
    ld: &mut LaunchDigest<Updating>,
    fw: &Ovmf,
    s: &SevSection,
    h: &SevHashes,
) -> std::result::Result<(), String> {
    let table_gpa = fw
        .sev_hash_table_gpa()
        .map_err(|e| e.to_string())?
        .ok_or("the footer table has no SEV hash table block (7255371f-…)")?;
    if s.size != PAGE {
        return Err(format!(
            "the kernel hashes section must be one 4096-byte page, it is {:#x} bytes",
            s.size
        ));
    }
    let offset = (table_gpa & (PAGE - 1)) as usize;
    let page = h.page(offset).ok_or(format!(
        "the hash table at GPA {table_gpa:#x} crosses the end of its page"
    ))?;
    ld.normal_pages(u64::from(s.gpa), page.as_slice());
    Ok(())
}
