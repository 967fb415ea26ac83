//! Confidential-VM launch digests for the manifest: every combination of the configured
//! firmware files, vCPU counts, vCPU types, VMM flavours and guest features (`[measurements.snp]`),
//! and the TDX MRTD of every `[measurements.tdx]` firmware. The arithmetic is
//! `measurements::cvm`; this module reads the files and names the config key in its errors.

use std::path::Path;

use anyhow::{Context, Result};
use image_config::{MeasurementsConfig, SnpConfig, TdxConfig};
use measurements::cvm::{
    snp, tdx, GuestFeatures, MrtdOrder, Ovmf, SnpLaunch, VcpuSignature, VmmType,
};
use measurements::manifest::{SnpEntry, TdxEntry};
use sha2::{Digest as _, Sha256};

/// The manifest's `snp` and `tdx` arrays (`None` where the config has no such section).
pub type LaunchEntries = (Option<Vec<SnpEntry>>, Option<Vec<TdxEntry>>);

/// Computes the manifest's `snp` and `tdx` arrays from `[measurements]`.
pub fn manifest_entries(cfg: &MeasurementsConfig) -> Result<LaunchEntries> {
    let snp = cfg.snp.as_ref().map(snp_entries).transpose()?;
    let tdx = cfg.tdx.as_ref().map(tdx_entries).transpose()?;
    Ok((snp, tdx))
}

/// A firmware file and its SHA-256.
fn read_firmware(path: &Path, key: &str) -> Result<(Vec<u8>, String)> {
    let bytes =
        std::fs::read(path).with_context(|| format!("{key}: reading {}", path.display()))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, sha))
}

fn snp_entries(cfg: &SnpConfig) -> Result<Vec<SnpEntry>> {
    let types = cfg
        .vcpu_types
        .iter()
        .map(|t| Ok((t.as_str(), VcpuSignature::from_type(t)?)))
        .collect::<Result<Vec<_>, measurements::cvm::CvmError>>()
        .context("measurements.snp.vcpu-types")?;
    let vmms = cfg
        .vmm_types
        .iter()
        .map(|v| v.parse::<VmmType>())
        .collect::<Result<Vec<_>, _>>()
        .context("measurements.snp.vmm-types")?;
    // Keys and policy first: a bad key fails before any firmware is hashed.
    let policy = measurements::cvm::SnpPolicy::from_fields(
        cfg.policy.flags.iter().copied(),
        cfg.policy.abi_major,
        cfg.policy.abi_minor,
    )
    .context("measurements.snp.policy")?;
    let id = cfg.id_block.as_ref().map(id_params).transpose()?;
    let mut out = digests(cfg, &types, &vmms)?;
    for e in &mut out {
        launch_policy(e, policy, id.as_ref())?;
    }
    Ok(out)
}

/// Every combination's launch digest (policy, ID block and QEMU arguments still unset).
fn digests(
    cfg: &SnpConfig,
    types: &[(&str, VcpuSignature)],
    vmms: &[VmmType],
) -> Result<Vec<SnpEntry>> {
    let mut out = Vec::new();
    for path in &cfg.ovmf {
        let (bytes, sha) = read_firmware(path, "measurements.snp.ovmf")?;
        let what = || {
            format!(
                "measurements.snp.ovmf: SEV-SNP digests of {}",
                path.display()
            )
        };
        let fw = Ovmf::parse(&bytes).with_context(what)?;
        // The firmware pages are the same for every combination: hash them once and seed.
        let seed = snp::ovmf_hash(&fw).with_context(what)?;
        for &vcpus in &cfg.vcpus {
            for &(vcpu_type, sig) in types {
                for &vmm in vmms {
                    for &features in &cfg.guest_features {
                        let launch = SnpLaunch {
                            vcpus,
                            vcpu_sig: sig,
                            guest_features: GuestFeatures(features),
                            vmm,
                            kernel_hashes: None,
                            ovmf_hash: Some(seed),
                        };
                        let m = snp::launch_digest(&fw, &launch).with_context(what)?;
                        out.push(SnpEntry {
                            vcpus,
                            vcpu_type: vcpu_type.to_string(),
                            vcpu_sig: sig.to_string(),
                            vmm_type: vmm.to_string(),
                            guest_features: GuestFeatures(features).to_string(),
                            ovmf_sha256: sha.clone(),
                            measurement: m.hex(),
                            policy: None,
                            id_block: None,
                            qemu_args: None,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Records the guest policy next to the digest, signs its ID block (with an ID key) and spells
/// the QEMU arguments (QEMU entries).
fn launch_policy(
    e: &mut SnpEntry,
    policy: measurements::cvm::SnpPolicy,
    id: Option<&crate::snp_id::IdParams>,
) -> Result<()> {
    let m = measurements::cvm::SnpMeasurement::from_hex("launch digest", &e.measurement)?;
    e.policy = Some(policy.to_string());
    e.id_block = id
        .map(|p| crate::snp_id::sign(p, &m, policy))
        .transpose()
        .context("measurements.snp.id-key")?;
    if e.vmm_type == VmmType::Qemu.to_string() {
        e.qemu_args = Some(crate::snp_id::qemu_args(policy, e.id_block.as_ref()));
    }
    Ok(())
}

fn id_params(c: &image_config::SnpIdBlockConfig) -> Result<crate::snp_id::IdParams> {
    Ok(crate::snp_id::IdParams {
        id_key: crate::snp_id::load_key(&c.id_key, "measurements.snp.id-key")?,
        author_key: c
            .author_key
            .as_deref()
            .map(|k| crate::snp_id::load_key(k, "measurements.snp.author-key"))
            .transpose()?,
        family_id: c.family_id,
        image_id: c.image_id,
        guest_svn: c.guest_svn,
    })
}

fn tdx_entries(cfg: &TdxConfig) -> Result<Vec<TdxEntry>> {
    let order = if cfg.two_pass {
        MrtdOrder::TwoPass
    } else {
        MrtdOrder::SinglePass
    };
    cfg.ovmf
        .iter()
        .map(|path| {
            let (bytes, sha) = read_firmware(path, "measurements.tdx.ovmf")?;
            let what = || format!("measurements.tdx.ovmf: TDX MRTD of {}", path.display());
            let fw = Ovmf::parse(&bytes).with_context(what)?;
            let mrtd = tdx::mrtd(&fw, order).with_context(what)?;
            Ok(TdxEntry {
                ovmf_sha256: sha,
                mrtd: mrtd.hex(),
                two_pass: cfg.two_pass,
                // Filled once the image exists ([`crate::measure::tdx_rtmrs`]).
                rtmrs: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../measurements/tests/data/cvm")
            .join(name)
    }

    fn snp_cfg(vcpu_types: &[&str], vmm_types: &[&str]) -> MeasurementsConfig {
        MeasurementsConfig {
            banks: vec![],
            snp: Some(SnpConfig {
                ovmf: vec![fixture("ovmf_AmdSev_suffix.bin")],
                vcpus: vec![1, 4],
                vcpu_types: vcpu_types.iter().map(|s| s.to_string()).collect(),
                vmm_types: vmm_types.iter().map(|s| s.to_string()).collect(),
                guest_features: vec![0x1, 0x21],
                policy: image_config::SnpPolicyFields {
                    flags: vec!["smt"],
                    abi_major: 0,
                    abi_minor: 0,
                },
                id_block: None,
            }),
            platform_values: vec![],
            tdx: None,
        }
    }

    /// Every combination, in config order; the values are sev-snp-measure 0.0.13's
    /// (`tests/test_guest.py`: AmdSev fixture, no kernel, EPYC-v4, QEMU).
    #[test]
    fn snp_combinations() {
        let (snp, tdx) =
            manifest_entries(&snp_cfg(&["EPYC-v4", "EPYC-Milan"], &["QEMU", "gce"])).unwrap();
        assert!(tdx.is_none());
        let snp = snp.unwrap();
        assert_eq!(snp.len(), 2 * 2 * 2 * 2);
        let first = &snp[0];
        assert_eq!(
            (
                first.vcpus,
                first.vcpu_type.as_str(),
                first.vmm_type.as_str()
            ),
            (1, "EPYC-v4", "QEMU")
        );
        assert_eq!(
            (first.vcpu_sig.as_str(), first.guest_features.as_str()),
            ("0x800f12", "0x1")
        );
        assert_eq!(first.measurement, "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d");
        assert_eq!(snp[1].measurement, "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b");
        assert_eq!(
            first.ovmf_sha256,
            "8f765dfabc127fc0a938a0744a3103ec15864d7d794eb4c398aa976b6d6ab16c"
        );
    }

    /// With an ID key, every entry carries an ID block over its own digest and the policy,
    /// signed deterministically (RFC 6979): two runs give the same manifest bytes.
    #[test]
    fn id_blocks_for_every_combination() {
        use base64::Engine as _;
        use measurements::cvm::{IdAuth, IdBlock};
        let mut cfg = snp_cfg(&["EPYC-v4"], &["QEMU", "ec2"]);
        let snp = cfg.snp.as_mut().unwrap();
        snp.policy.flags = vec!["smt", "single-socket"];
        snp.id_block = Some(image_config::SnpIdBlockConfig {
            id_key: fixture("idkey.pem"),
            author_key: Some(fixture("authorkey.pem")),
            family_id: [1; 16],
            image_id: [2; 16],
            guest_svn: 7,
        });
        let entries = manifest_entries(&cfg).unwrap().0.unwrap();
        assert_eq!(entries.len(), 2 * 2 * 2);
        let b64 = base64::engine::general_purpose::STANDARD;
        for e in &entries {
            assert_eq!(e.policy.as_deref(), Some("0x130000"));
            let id = e.id_block.as_ref().unwrap();
            let block = IdBlock::parse(&b64.decode(&id.block).unwrap()).unwrap();
            assert_eq!(block.launch_digest.hex(), e.measurement);
            assert_eq!((block.guest_svn, block.family_id), (7, [1; 16]));
            assert_eq!(block.policy.to_string(), "0x130000");
            let auth = IdAuth::parse(&b64.decode(&id.auth).unwrap()).unwrap();
            auth.verify(&block).unwrap();
            assert_eq!(hex::encode(auth.id_key.digest()), id.id_key_digest);
            assert_eq!(e.qemu_args.is_some(), e.vmm_type == "QEMU");
            if let Some(q) = &e.qemu_args {
                assert!(q[3].contains(&format!("id-block={}", id.block)));
                assert!(q[3].ends_with(",author-key-enabled=on"), "{}", q[3]);
            }
        }
        assert_eq!(manifest_entries(&cfg).unwrap().0.unwrap(), entries);
        // A P-256 key is refused naming the config key.
        cfg.snp.as_mut().unwrap().id_block.as_mut().unwrap().id_key = fixture("p256key.pem");
        let e = format!("{:#}", manifest_entries(&cfg).unwrap_err());
        assert!(
            e.contains("measurements.snp.id-key") && e.contains("a P-256 key"),
            "{e}"
        );
    }

    #[test]
    fn unknown_names_point_at_the_config_key() {
        let e = manifest_entries(&snp_cfg(&["EPYC-v9"], &["QEMU"])).unwrap_err();
        assert!(
            format!("{e:#}")
                .starts_with("measurements.snp.vcpu-types: unknown vCPU type `EPYC-v9`"),
            "{e:#}"
        );
        let e = manifest_entries(&snp_cfg(&["EPYC"], &["qemu"])).unwrap_err();
        assert!(
            format!("{e:#}").contains("measurements.snp.vmm-types: unknown VMM type `qemu`"),
            "{e:#}"
        );
    }

    #[test]
    fn tdx_of_a_fixture_without_full_image_is_an_error_naming_the_file() {
        let cfg = MeasurementsConfig {
            banks: vec![],
            snp: None,
            tdx: Some(TdxConfig {
                ovmf: vec![fixture("ovmf_OvmfX64_suffix.bin")],
                two_pass: false,
                edk2: "edk2-202411".into(),
            }),
            platform_values: vec![],
        };
        let e = format!("{:#}", manifest_entries(&cfg).unwrap_err());
        assert!(
            e.contains("measurements.tdx.ovmf: TDX MRTD of") && e.contains("runs past the end"),
            "{e}"
        );
    }
}
