//! VMSA pages: the initial register state of every vCPU (SEV-ES save area, AMD APM Vol. 2
//! Table B-4; Linux `struct sev_es_save_area`), as QEMU, AWS EC2 and Google GCE set it up.

use super::vcpu::VcpuSignature;

/// One VMSA page.
pub type VmsaPage = [u8; 4096];

/// Which hypervisor builds the VMSAs (sev-snp-measure `--vmm-type`, case-sensitive spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VmmType {
    /// QEMU/KVM (`QEMU`).
    Qemu,
    /// AWS EC2 (`ec2`), as modelled by sev-snp-measure 0.0.13 (RDX 0x600).
    Ec2,
    /// Google GCE (`gce`).
    Gce,
}

impl VmmType {
    /// Every flavour, in sev-snp-measure's order.
    pub const ALL: [VmmType; 3] = [VmmType::Qemu, VmmType::Ec2, VmmType::Gce];

    /// sev-snp-measure's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VmmType::Qemu => "QEMU",
            VmmType::Ec2 => "ec2",
            VmmType::Gce => "gce",
        }
    }
}

impl std::fmt::Display for VmmType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VmmType {
    type Err = super::error::CvmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VmmType::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| super::error::CvmError::UnknownVmmType(s.to_string()))
    }
}

/// SEV_FEATURES written into the VMSA (bit 0 SNPActive, bit 5 DebugSwap, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuestFeatures(pub u64);

impl std::fmt::Display for GuestFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Where the BSP starts (the reset vector).
pub const BSP_EIP: u32 = 0xFFFF_FFF0;

/// Register values that differ between hypervisors.
struct Flavour {
    cs_attr: u16,
    ss_attr: u16,
    tr_attr: u16,
    rdx: u64,
    mxcsr: u32,
    fcw: u16,
    g_pat: u64,
}

fn flavour(vmm: VmmType, eip: u32, sig: VcpuSignature) -> Flavour {
    const PAT: u64 = 0x0007_0406_0007_0406;
    match vmm {
        VmmType::Qemu => Flavour {
            cs_attr: 0x9b,
            ss_attr: 0x93,
            tr_attr: 0x8b,
            rdx: u64::from(sig.0),
            mxcsr: 0x1f80,
            fcw: 0x37f,
            g_pat: PAT,
        },
        VmmType::Ec2 => Flavour {
            cs_attr: if eip == BSP_EIP { 0x9a } else { 0x9b },
            ss_attr: 0x92,
            tr_attr: 0x83,
            rdx: 0x600,
            mxcsr: 0,
            fcw: 0,
            g_pat: PAT,
        },
        VmmType::Gce => Flavour {
            cs_attr: 0x9b,
            ss_attr: 0x93,
            tr_attr: 0x8b,
            rdx: 0x600,
            mxcsr: 0,
            fcw: 0,
            g_pat: 0x0007_0106,
        },
    }
}

/// Writes little-endian fields into a page.
struct Page(Box<VmsaPage>);

impl Page {
    fn put(&mut self, offset: usize, bytes: &[u8]) {
        self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// A segment register `{ u16 selector; u16 attrib; u32 limit; u64 base; }`.
    fn segment(&mut self, offset: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.put(offset, &selector.to_le_bytes());
        self.put(offset + 2, &attrib.to_le_bytes());
        self.put(offset + 4, &limit.to_le_bytes());
        self.put(offset + 8, &base.to_le_bytes());
    }
}

/// The save area of a vCPU starting at `eip` (real mode: CS base `eip & 0xFFFF0000`, RIP the
/// low 16 bits). `features` is SEV_FEATURES (0 for SEV-ES).
pub fn save_area(
    eip: u32,
    features: GuestFeatures,
    sig: VcpuSignature,
    vmm: VmmType,
) -> Box<VmsaPage> {
    let f = flavour(vmm, eip, sig);
    let mut p = Page(Box::new([0; 4096]));
    p.segment(0x00, 0, 0x93, 0xffff, 0); // ES
    p.segment(
        0x10,
        0xf000,
        f.cs_attr,
        0xffff,
        u64::from(eip & 0xffff_0000),
    ); // CS
    p.segment(0x20, 0, f.ss_attr, 0xffff, 0); // SS
    for ds_fs_gs in [0x30, 0x40, 0x50] {
        p.segment(ds_fs_gs, 0, 0x93, 0xffff, 0);
    }
    p.segment(0x60, 0, 0, 0xffff, 0); // GDTR
    p.segment(0x70, 0, 0x82, 0xffff, 0); // LDTR
    p.segment(0x80, 0, 0, 0xffff, 0); // IDTR
    p.segment(0x90, 0, f.tr_attr, 0xffff, 0); // TR
    p.put(0x0d0, &0x1000u64.to_le_bytes()); // EFER.SVME
    p.put(0x148, &0x40u64.to_le_bytes()); // CR4.MCE
    p.put(0x158, &0x10u64.to_le_bytes()); // CR0
    p.put(0x160, &0x400u64.to_le_bytes()); // DR7
    p.put(0x168, &0xffff_0ff0u64.to_le_bytes()); // DR6
    p.put(0x170, &0x2u64.to_le_bytes()); // RFLAGS
    p.put(0x178, &u64::from(eip & 0xffff).to_le_bytes()); // RIP
    p.put(0x268, &f.g_pat.to_le_bytes()); // G_PAT
    p.put(0x310, &f.rdx.to_le_bytes()); // RDX
    p.put(0x3b0, &features.0.to_le_bytes()); // SEV_FEATURES
    p.put(0x3e8, &0x1u64.to_le_bytes()); // XCR0
    p.put(0x408, &f.mxcsr.to_le_bytes()); // MXCSR
    p.put(0x410, &f.fcw.to_le_bytes()); // X87_FCW
    p.0
}

/// The save area every vCPU of a COCONUT-SVSM guest starts with: 64-bit flat segments, RIP at
/// the SVSM entry point, SEV_FEATURES fixed at SNPActive. X87_FCW stays 0 as in sev-snp-measure
/// 0.0.13 (whose hardware-captured SVSM vectors were produced that way).
pub fn svsm_save_area(entry: u64, sig: VcpuSignature) -> Box<VmsaPage> {
    let mut p = Page(Box::new([0; 4096]));
    for data in [0x00, 0x20, 0x30, 0x40] {
        p.segment(data, 16, 0xc93, 0xffff_ffff, 0); // ES, SS, DS, FS
    }
    p.segment(0x10, 8, 0xc9b, 0xffff_ffff, 0); // CS
    p.segment(0x50, 0, 0x93, 0xffff, 0); // GS
    p.segment(0x60, 0, 0, 0xffff, 0); // GDTR
    p.segment(0x70, 0, 0x82, 0xffff, 0); // LDTR
    p.segment(0x80, 0, 0, 0xffff, 0); // IDTR
    p.segment(0x90, 0, 0x8b, 0xffff, 0); // TR
    p.put(0x0d0, &0x1000u64.to_le_bytes()); // EFER.SVME
    p.put(0x148, &0x40u64.to_le_bytes()); // CR4.MCE
    p.put(0x158, &0x11u64.to_le_bytes()); // CR0
    p.put(0x160, &0x400u64.to_le_bytes()); // DR7
    p.put(0x168, &0xffff_0ff0u64.to_le_bytes()); // DR6
    p.put(0x170, &0x2u64.to_le_bytes()); // RFLAGS
    p.put(0x178, &entry.to_le_bytes()); // RIP
    p.put(0x268, &0x0007_0406_0007_0406u64.to_le_bytes()); // G_PAT
    p.put(0x310, &u64::from(sig.0).to_le_bytes()); // RDX
    p.put(0x3b0, &1u64.to_le_bytes()); // SEV_FEATURES
    p.put(0x3e8, &0x1u64.to_le_bytes()); // XCR0
    p.put(0x408, &0x1f80u32.to_le_bytes()); // MXCSR
    p.0
}

/// The VMSAs of a guest: vCPU 0 runs the BSP save area, every other vCPU the AP one.
#[derive(Debug, Clone)]
pub struct Vmsas {
    bsp: Box<VmsaPage>,
    /// `None` when the firmware's AP entry point is 0 (then only one vCPU can be measured).
    ap: Option<Box<VmsaPage>>,
}

impl Vmsas {
    /// Builds both save areas; `ap_eip` is the SEV-ES reset block value.
    pub fn new(ap_eip: u32, features: GuestFeatures, sig: VcpuSignature, vmm: VmmType) -> Self {
        Vmsas {
            bsp: save_area(BSP_EIP, features, sig, vmm),
            ap: (ap_eip != 0).then(|| save_area(ap_eip, features, sig, vmm)),
        }
    }

    /// The page of vCPU `index` (`None` for an AP when there is no AP entry point).
    pub fn page(&self, index: u32) -> Option<&VmsaPage> {
        if index == 0 {
            Some(&self.bsp)
        } else {
            self.ap.as_deref()
        }
    }
}
