//! vCPU signatures (CPUID Fn0000_0001 EAX), the value QEMU puts in RDX of every VMSA, and the
//! QEMU CPU model names sev-snp-measure 0.0.13 knows.

use super::error::CvmError;

/// A vCPU signature: `ext_family << 20 | ext_model << 16 | base_family << 8 | base_model << 4 |
/// stepping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VcpuSignature(pub u32);

impl VcpuSignature {
    /// The signature of a family/model/stepping triple (AMD CPUID specification #25481).
    /// Families above 0xF are split into base 0xF plus an extended family.
    pub const fn from_family_model_stepping(family: u32, model: u32, stepping: u32) -> Self {
        let (fam_lo, fam_hi) = if family > 0xf {
            (0xf, (family - 0xf) & 0xff)
        } else {
            (family, 0)
        };
        VcpuSignature(
            (fam_hi << 20)
                | (((model >> 4) & 0xf) << 16)
                | (fam_lo << 8)
                | ((model & 0xf) << 4)
                | (stepping & 0xf),
        )
    }

    /// The signature of a QEMU CPU model name (`EPYC-v4`, `EPYC-Milan`, …; case-sensitive).
    pub fn from_type(name: &str) -> Result<Self, CvmError> {
        VCPU_TYPES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, s)| s)
            .ok_or_else(|| CvmError::UnknownVcpuType {
                name: name.to_string(),
                known: VCPU_TYPES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl std::fmt::Display for VcpuSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

const fn sig(family: u32, model: u32, stepping: u32) -> VcpuSignature {
    VcpuSignature::from_family_model_stepping(family, model, stepping)
}

/// Every vCPU type name sev-snp-measure 0.0.13 accepts (QEMU's `builtin_x86_defs`), in its order.
pub const VCPU_TYPES: &[(&str, VcpuSignature)] = &[
    ("EPYC", sig(23, 1, 2)),
    ("EPYC-v1", sig(23, 1, 2)),
    ("EPYC-v2", sig(23, 1, 2)),
    ("EPYC-IBPB", sig(23, 1, 2)),
    ("EPYC-v3", sig(23, 1, 2)),
    ("EPYC-v4", sig(23, 1, 2)),
    ("EPYC-Rome", sig(23, 49, 0)),
    ("EPYC-Rome-v1", sig(23, 49, 0)),
    ("EPYC-Rome-v2", sig(23, 49, 0)),
    ("EPYC-Rome-v3", sig(23, 49, 0)),
    ("EPYC-Milan", sig(25, 1, 1)),
    ("EPYC-Milan-v1", sig(25, 1, 1)),
    ("EPYC-Milan-v2", sig(25, 1, 1)),
    ("EPYC-Genoa", sig(25, 17, 0)),
    ("EPYC-Genoa-v1", sig(25, 17, 0)),
    ("EPYC-Turin", sig(26, 0, 0)),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Signatures from the spec's table (§5.4), which matches sev-snp-measure's `CPU_SIGS`.
    #[test]
    fn known_signatures() {
        for (name, want) in [
            ("EPYC-v4", 0x0080_0F12),
            ("EPYC-Rome", 0x0083_0F10),
            ("EPYC-Milan-v2", 0x00A0_0F11),
            ("EPYC-Genoa", 0x00A1_0F10),
            ("EPYC-Turin", 0x00B0_0F00),
        ] {
            assert_eq!(VcpuSignature::from_type(name).unwrap().0, want, "{name}");
        }
        assert_eq!(
            VcpuSignature::from_family_model_stepping(6, 0x55, 7).0,
            0x50657
        );
    }

    #[test]
    fn unknown_type_lists_the_known_ones() {
        let e = VcpuSignature::from_type("epyc-v4").unwrap_err().to_string();
        assert!(e.contains("`epyc-v4`") && e.contains("EPYC-Turin"), "{e}");
    }
}
