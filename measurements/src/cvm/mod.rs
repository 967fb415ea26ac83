//! Confidential-VM launch measurements, computed from firmware bytes before any guest runs:
//!
//! * AMD SEV-SNP `MEASUREMENT` ([`snp::launch_digest`]; SHA-384 over firmware pages, SEV
//!   metadata sections and one VMSA per vCPU) for QEMU, AWS EC2 and Google GCE, with or without
//!   the measured-direct-boot kernel hashes page, plus the firmware-only [`snp::ovmf_hash`];
//! * the SNP digest of a COCONUT-SVSM guest ([`svsm::launch_digest`]);
//! * the SEV-SNP guest policy ([`policy::SnpPolicy`]) and the ID block / ID authentication
//!   structure the image owner signs for it ([`idblock`]);
//! * the older SEV and SEV-ES digests ([`sev`], SHA-256);
//! * Intel TDX `MRTD` ([`tdx::mrtd`], single- or two-pass record order).
//!
//! Everything mirrors `sev-snp-measure` 0.0.13 (the live oracle of the tests) and the formats
//! in edk2's `OvmfPkg/ResetVector`. Pure: bytes in, digest newtypes out, no file access; a
//! corrupt firmware image is an error naming the offset, never a panic.
//!
//! ```
//! use measurements::cvm::{snp, GuestFeatures, Ovmf, SnpLaunch, VcpuSignature, VmmType};
//! # fn run(firmware: &[u8]) -> Result<(), measurements::cvm::CvmError> {
//! let fw = Ovmf::parse(firmware)?;
//! let m = snp::launch_digest(&fw, &SnpLaunch {
//!     vcpus: 4,
//!     vcpu_sig: VcpuSignature::from_type("EPYC-v4")?,
//!     guest_features: GuestFeatures(0x1),
//!     vmm: VmmType::Qemu,
//!     kernel_hashes: None,
//!     ovmf_hash: None,
//! })?;
//! println!("{m}");
//! # Ok(()) }
//! ```

mod bytes;
pub mod digest;
pub mod error;
pub mod hashes;
pub mod idblock;
pub mod ovmf;
pub mod policy;
pub mod rtmr;
pub mod sev;
pub mod sevmeta;
pub mod snp;
pub mod svsm;
pub mod tdvf;
pub mod tdx;
pub mod vcpu;
pub mod vmsa;

#[cfg(test)]
mod tests;

pub use digest::{
    Completed, LaunchDigest, Mrtd, OvmfHash, SevLaunchDigest, SnpMeasurement, Updating,
};
pub use error::CvmError;
pub use hashes::SevHashes;
pub use idblock::{IdAuth, IdBlock, IdBlockError, IdPublicKey};
pub use ovmf::Ovmf;
pub use policy::{PolicyError, SnpPolicy};
pub use sevmeta::{SevSection, SevSectionKind};
pub use snp::SnpLaunch;
pub use svsm::SvsmLaunch;
pub use tdvf::{TdxMetadata, TdxSection};
pub use tdx::MrtdOrder;
pub use vcpu::{VcpuSignature, VCPU_TYPES};
pub use vmsa::{GuestFeatures, VmmType};

/// Runs every parser on untrusted `data` and discards the results: the body of the
/// `ovmf_metadata` fuzz target and of the corpus replay test. Errors are fine; a panic is a bug.
#[doc(hidden)]
pub fn fuzz_ovmf_metadata(data: &[u8]) {
    let Ok(fw) = Ovmf::parse(data) else {
        return;
    };
    let _ = fw.sev_es_reset_eip();
    let _ = fw.supports_sev_hashes();
    let _ = fw.sev_metadata();
    if let Ok(meta) = fw.tdx_metadata() {
        let _ = meta.validate(data.len());
    }
    // Small images with small sections are cheap enough to run the whole computations on, too.
    let sev_bytes: u64 = fw
        .sev_metadata()
        .map_or(0, |m| m.iter().map(|s| u64::from(s.size)).sum());
    let tdx_bytes: u64 = fw.tdx_metadata().map_or(0, |m| {
        m.sections
            .iter()
            .map(|s| s.memory_data_size.min(1 << 40))
            .sum()
    });
    if data.len() <= 64 * 1024 && sev_bytes <= 16 << 20 && tdx_bytes <= 16 << 20 {
        let launch = SnpLaunch {
            vcpus: 2,
            vcpu_sig: VcpuSignature(0x800f12),
            guest_features: GuestFeatures(1),
            vmm: VmmType::Ec2,
            kernel_hashes: Some(SevHashes::new(b"", None, None)),
            ovmf_hash: None,
        };
        let _ = snp::launch_digest(&fw, &launch);
        let _ = sev::seves_launch_digest(&fw, 2, launch.vcpu_sig, VmmType::Gce, None);
        let _ = tdx::mrtd(&fw, MrtdOrder::TwoPass);
        // The same bytes as an SVSM image below a blank 4 KiB OVMF.
        let _ = svsm::launch_digest(&SvsmLaunch {
            ovmf: &[0; 4096],
            svsm: data,
            vars_size: 0x1000,
            vcpus: 2,
            vcpu_sig: launch.vcpu_sig,
        });
    }
}
