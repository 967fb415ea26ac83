//! SEV and SEV-ES launch digests (SHA-256): the firmware file, the kernel hashes table when
//! measured direct boot is used, and for SEV-ES one VMSA per vCPU (SEV_FEATURES 0). Mirrors
//! sev-snp-measure 0.0.13 `--mode sev` and `--mode seves`.

use sha2::{Digest as _, Sha256};

use super::digest::SevLaunchDigest;
use super::error::{CvmError, Result};
use super::hashes::SevHashes;
use super::ovmf::Ovmf;
use super::vcpu::VcpuSignature;
use super::vmsa::{GuestFeatures, VmmType};

/// The SEV launch digest: `SHA-256(firmware ‖ [hashes table])`.
pub fn sev_launch_digest(fw: &Ovmf, kernel: Option<&SevHashes>) -> Result<SevLaunchDigest> {
    Ok(SevLaunchDigest(base(fw, kernel)?.finalize().into()))
}

/// The SEV-ES launch digest: `SHA-256(firmware ‖ [hashes table] ‖ VMSA_0 ‖ … ‖ VMSA_{n-1})`.
pub fn seves_launch_digest(
    fw: &Ovmf,
    vcpus: u32,
    sig: VcpuSignature,
    vmm: VmmType,
    kernel: Option<&SevHashes>,
) -> Result<SevLaunchDigest> {
    let mut h = base(fw, kernel)?;
    let vmsas = super::snp::vmsas(fw, vcpus, GuestFeatures(0), sig, vmm)?;
    for v in 0..vcpus {
        h.update(vmsas.page(v).ok_or(CvmError::NoApEntry { vcpus })?);
    }
    Ok(SevLaunchDigest(h.finalize().into()))
}

fn base(fw: &Ovmf, kernel: Option<&SevHashes>) -> Result<Sha256> {
    // sev-snp-measure parses the SEV metadata in every mode; a corrupt one is an error here too.
    fw.sev_metadata()?;
    let mut h = Sha256::new();
    h.update(fw.bytes());
    if let Some(k) = kernel {
        if !fw.supports_sev_hashes()? {
            return Err(CvmError::NoKernelHashes {
                why: "OVMF doesn't support kernel/initrd/cmdline measurement",
            });
        }
        h.update(k.table());
    }
    Ok(h)
}
