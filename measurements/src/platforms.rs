//! Per-platform reference values: for each target platform, which TPM PCRs come from the
//! image (predicted by nodeimg), which hold a value known for the platform, which depend on the
//! platform's firmware and can only be recorded from a real boot (`nodeimg record-pcrs`), and
//! which a verifier should enforce, only warn on, or leave out. Every rule says where it comes
//! from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pcr::{Bank, Digest};

/// Where a register's reference value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Predicted from the image (and the enrolled Secure Boot keys) by nodeimg.
    Image,
    /// A value the platform always has (e.g. a PCR whose only event is a separator).
    Known,
    /// Only a real boot on the platform shows it: recorded with `nodeimg record-pcrs`.
    Recorded,
}

/// What a verifier does with a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// A mismatch fails attestation.
    Enforce,
    /// A mismatch is reported, not fatal (platform-owned values that change without notice).
    Warn,
    /// Not compared at all (differs per VM or per firmware build).
    Exclude,
}

/// A known constant a platform's register holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constant {
    /// The register was extended once, with the separator (4 zero bytes): `H(0…0 ‖ H(00000000))`.
    SeparatorOnly,
    /// Never extended: all zeros.
    Zero,
}

impl Constant {
    /// The value in `bank`.
    pub fn value(self, bank: Bank) -> Digest {
        match self {
            Constant::Zero => bank.zero(),
            Constant::SeparatorOnly => bank.zero().extend(&bank.hash(&[0u8; 4])),
        }
    }
}

/// One register's rule on a platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub pcr: u32,
    pub source: Source,
    pub policy: Policy,
    pub constant: Option<Constant>,
    pub why: &'static str,
}

/// A target platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub name: &'static str,
    pub description: &'static str,
    pub rules: &'static [Rule],
    /// Where the rules come from.
    pub sources: &'static [&'static str],
}

const fn image(pcr: u32, why: &'static str) -> Rule {
    Rule {
        pcr,
        source: Source::Image,
        policy: Policy::Enforce,
        constant: None,
        why,
    }
}

const fn recorded(pcr: u32, policy: Policy, why: &'static str) -> Rule {
    Rule {
        pcr,
        source: Source::Recorded,
        policy,
        constant: None,
        why,
    }
}

const fn known(pcr: u32, c: Constant, policy: Policy, why: &'static str) -> Rule {
    Rule {
        pcr,
        source: Source::Known,
        policy,
        constant: Some(c),
        why,
    }
}

const UKI: &str = "the UKI's Authenticode digest (and the inner kernel's) as the firmware loads it";
const PCR7: &str = "Secure Boot state and the enrolled PK/KEK/db/dbx plus the authorising db entry (predicted from the keys the image enrolls)";
const PCR9: &str = "the stub's LoadOptions and the kernel's initrd measurement";
const PCR11: &str = "the UKI's sections as systemd-stub measures them";
const PCR12: &str = "credentials, addons and the command line the stub measures (none: zero)";
const PCR13: &str = "system extensions the stub measures (none: zero)";
const PCR5: &str =
    "the separator, the disk's GPT (header and used entries) and the two ExitBootServices actions";
const SEPARATOR: &str = "only the EV_SEPARATOR on this firmware";
const SHIM: &str = "shim/MOK measurements; no shim in the boot chain: never extended";

const IMAGE_PCRS: [Rule; 6] = [
    image(4, UKI),
    image(7, PCR7),
    image(9, PCR9),
    image(11, PCR11),
    image(12, PCR12),
    image(13, PCR13),
];

/// Firmware rows the three clouds share (Constellation's overrides): PCR 2, 3, 6 hold only the
/// separator, PCR 5 the GPT and boot-manager actions, PCR 14 nothing.
const CLOUD_SEPARATOR: [Rule; 3] = [
    known(2, Constant::SeparatorOnly, Policy::Warn, SEPARATOR),
    known(3, Constant::SeparatorOnly, Policy::Warn, SEPARATOR),
    known(6, Constant::SeparatorOnly, Policy::Warn, SEPARATOR),
];
const CLOUD_GPT: Rule = recorded(
    5,
    Policy::Warn,
    "the GPT and ExitBootServices actions; predicted for OVMF (pcrs.5), not yet observed on this cloud's firmware",
);
const CLOUD_SHIM: Rule = known(14, Constant::Zero, Policy::Warn, SHIM);

/// The platforms nodeimg describes.
pub const ALL: &[Platform] = &[
    Platform {
        name: "qemu-ovmf",
        description: "QEMU + OVMF (edk2) + swtpm, as `nodeimg boot --tpm` runs it",
        rules: &[
            IMAGE_PCRS[0], IMAGE_PCRS[1], IMAGE_PCRS[2], IMAGE_PCRS[3], IMAGE_PCRS[4], IMAGE_PCRS[5],
            recorded(0, Policy::Warn, "the OVMF build (firmware code)"),
            recorded(1, Policy::Warn, "platform configuration, SMBIOS, boot variables"),
            recorded(2, Policy::Warn, "option ROMs"),
            recorded(3, Policy::Warn, "option ROM configuration"),
            image(5, PCR5),
            recorded(6, Policy::Warn, "platform-specific events"),
            known(14, Constant::Zero, Policy::Enforce, SHIM),
        ],
        sources: &[
            "every image PCR in both banks equals a real OVMF 2022.11 + swtpm boot (tests/tests/boot_attest.rs, boot_default.rs, boot_secureboot.rs)",
        ],
    },
    Platform {
        name: "aws-nitrotpm",
        description: "EC2 with NitroTPM (UEFI boot mode)",
        rules: &[
            IMAGE_PCRS[0], IMAGE_PCRS[1], IMAGE_PCRS[2], IMAGE_PCRS[3], IMAGE_PCRS[4], IMAGE_PCRS[5],
            recorded(0, Policy::Warn, "AWS's UEFI build; changes with AWS firmware rollouts (Constellation PR #3049)"),
            recorded(1, Policy::Exclude, "platform configuration; Constellation's verifier does not select it on AWS"),
            CLOUD_SEPARATOR[0],
            CLOUD_SEPARATOR[1],
            CLOUD_GPT,
            CLOUD_SEPARATOR[2],
            CLOUD_SHIM,
        ],
        sources: &[
            "PCR 4, 7 and 12 (SHA-384) equal AWS's nitro-tpm-pcr-compute for unsigned and Secure Boot-signed UKIs (tests/tests/secureboot.rs)",
            "firmware PCRs: Constellation's AWS overrides (internal/attestation/measurements/overrides.go): warn-only 0, 2, 3, 6, 14; 2, 3, 6 = separator only; 14 = zero",
            "PCR 9, 11, 13 are predicted as on OVMF; not yet observed on a NitroTPM boot",
        ],
    },
    Platform {
        name: "gcp",
        description: "Compute Engine Shielded VM / Confidential VM (vTPM)",
        rules: &[
            IMAGE_PCRS[0],
            Rule { pcr: 7, source: Source::Image, policy: Policy::Warn, constant: None, why: "predicted for the image's own keys; GCE enrolls them only when the image is created with --platform-key-file/--key-exchange-key-file/--signature-database-file, else Google's keys (then recorded)" },
            IMAGE_PCRS[2], IMAGE_PCRS[3], IMAGE_PCRS[4], IMAGE_PCRS[5],
            recorded(0, Policy::Exclude, "embeds the firmware version string (\"GCE Virtual Firmware v2\"), changed by updates (Constellation PR #1343)"),
            recorded(1, Policy::Warn, "platform configuration; Constellation pins one observed value"),
            CLOUD_SEPARATOR[0],
            CLOUD_SEPARATOR[1],
            CLOUD_GPT,
            CLOUD_SEPARATOR[2],
            CLOUD_SHIM,
        ],
        sources: &[
            "firmware PCRs: Constellation's GCP overrides: warn-only 1, 2, 3, 6, 14; 2, 3, 6 = separator only; 14 = zero; PCR 0 excluded",
            "image PCRs: predicted as on OVMF; not yet observed on a GCE boot",
        ],
    },
    Platform {
        name: "azure",
        description: "Azure Trusted Launch / Confidential VM (vTPM)",
        rules: &[
            IMAGE_PCRS[0],
            Rule { pcr: 7, source: Source::Recorded, policy: Policy::Warn, constant: None, why: "Azure enrolls Microsoft's keys; custom Secure Boot keys are not enrolled from the image" },
            IMAGE_PCRS[2], IMAGE_PCRS[3], IMAGE_PCRS[4], IMAGE_PCRS[5],
            recorded(0, Policy::Exclude, "rare but unpredictable firmware changes (Constellation's verifier does not select it)"),
            known(1, Constant::SeparatorOnly, Policy::Warn, SEPARATOR),
            CLOUD_SEPARATOR[0],
            CLOUD_SEPARATOR[1],
            CLOUD_GPT,
            recorded(6, Policy::Exclude, "holds the VM's unique ID"),
            CLOUD_SHIM,
        ],
        sources: &[
            "firmware PCRs: Constellation's Azure overrides and PCR selection: warn-only 1, 2, 3, 14 (separator only / zero); 0 and 6 not selected",
            "image PCRs: predicted as on OVMF; not yet observed on an Azure boot",
        ],
    },
];

/// The platform named `name`.
pub fn by_name(name: &str) -> Option<&'static Platform> {
    ALL.iter().find(|p| p.name == name)
}

/// One register in a platform's reference values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterValue {
    pub source: Source,
    pub policy: Policy,
    /// Bank → expected value; empty for a `recorded` register nothing recorded yet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    pub why: String,
}

/// A platform's reference values (the manifest's `platforms.<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformValues {
    pub description: String,
    /// PCR index (decimal string) → value and policy.
    pub pcrs: BTreeMap<String, RegisterValue>,
    pub sources: Vec<String>,
}

/// Values recorded on a platform (`nodeimg record-pcrs` output): bank → PCR → hex.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub platform: String,
    pub pcrs: BTreeMap<String, BTreeMap<String, String>>,
}

/// Every platform's reference values for an image whose predicted `pcrs` (bank → PCR →
/// hex) are given, with `recorded` values filled in where a platform's were recorded.
pub fn reference_values(
    pcrs: &BTreeMap<String, BTreeMap<String, String>>,
    recorded: &[Recorded],
) -> BTreeMap<String, PlatformValues> {
    let mut out = BTreeMap::new();
    for p in ALL {
        let mut regs = BTreeMap::new();
        for r in p.rules {
            let key = r.pcr.to_string();
            let mut values = BTreeMap::new();
            for (bank_name, predicted) in pcrs {
                let Some(bank) = Bank::from_name(bank_name) else {
                    continue;
                };
                let v = match (r.source, r.constant) {
                    (Source::Image, _) => predicted.get(&key).cloned(),
                    (Source::Known, Some(c)) => Some(c.value(bank).to_hex()),
                    _ => recorded
                        .iter()
                        .filter(|x| x.platform == p.name)
                        .find_map(|x| x.pcrs.get(bank_name)?.get(&key).cloned()),
                };
                if let Some(v) = v {
                    values.insert(bank_name.clone(), v);
                }
            }
            regs.insert(
                key,
                RegisterValue {
                    source: r.source,
                    policy: r.policy,
                    values,
                    why: r.why.to_string(),
                },
            );
        }
        out.insert(
            p.name.to_string(),
            PlatformValues {
                description: p.description.to_string(),
                pcrs: regs,
                sources: p.sources.iter().map(|s| s.to_string()).collect(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_separator_only_value_is_constellations() {
        // Constellation's overrides: 3d458cfe…7969 = SHA-256(0^32 ‖ SHA-256(00000000)).
        assert_eq!(
            Constant::SeparatorOnly.value(Bank::Sha256).to_hex(),
            "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"
        );
    }

    #[test]
    fn every_platform_lists_each_pcr_once_and_predicts_4_9_11() {
        for p in ALL {
            let mut seen: Vec<u32> = p.rules.iter().map(|r| r.pcr).collect();
            seen.sort_unstable();
            let n = seen.len();
            seen.dedup();
            assert_eq!(seen.len(), n, "{}", p.name);
            for pcr in [4, 9, 11] {
                let r = p.rules.iter().find(|r| r.pcr == pcr).unwrap();
                assert_eq!(
                    (r.source, r.policy),
                    (Source::Image, Policy::Enforce),
                    "{} {pcr}",
                    p.name
                );
            }
            assert!(!p.sources.is_empty());
        }
    }

    #[test]
    fn recorded_values_fill_only_their_platform() {
        let pcrs = BTreeMap::from([(
            "sha256".to_string(),
            BTreeMap::from([("4".to_string(), "aa".repeat(32))]),
        )]);
        let rec = Recorded {
            platform: "aws-nitrotpm".into(),
            pcrs: BTreeMap::from([(
                "sha256".to_string(),
                BTreeMap::from([("0".to_string(), "bb".repeat(32))]),
            )]),
        };
        let v = reference_values(&pcrs, &[rec]);
        assert_eq!(
            v["aws-nitrotpm"].pcrs["0"].values["sha256"],
            "bb".repeat(32)
        );
        assert!(v["gcp"].pcrs["0"].values.is_empty());
        assert_eq!(v["azure"].pcrs["4"].values["sha256"], "aa".repeat(32));
        assert_eq!(v["azure"].pcrs["14"].values["sha256"], "00".repeat(32));
    }
}
