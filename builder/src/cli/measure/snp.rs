//! `nodeimg measure snp`: SEV, SEV-ES and SEV-SNP launch digests with the flags and output of
//! sev-snp-measure 0.0.13 (the lowercase hex digest alone on stdout; `--json` for an object).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use measurements::cvm::{
    sev, snp, GuestFeatures, Ovmf, OvmfHash, SevHashes, SnpLaunch, VcpuSignature, VmmType,
    VCPU_TYPES,
};
use sha2::{Digest as _, Sha256};

use crate::cli::Globals;

/// Guest mode (sev-snp-measure `--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// SEV-SNP launch digest (SHA-384).
    Snp,
    /// SEV-ES launch digest (SHA-256).
    Seves,
    /// SEV launch digest (SHA-256).
    Sev,
    /// SEV-SNP digest of the firmware pages only (to seed --snp-ovmf-hash).
    #[value(name = "snp:ovmf-hash")]
    SnpOvmfHash,
    /// SEV-SNP digest of a COCONUT-SVSM guest (needs --svsm and --vars-size or --vars-file).
    #[value(name = "snp:svsm")]
    SnpSvsm,
}

/// Output encoding of the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Hex,
    Base64,
}

/// AMD SEV / SEV-ES / SEV-SNP launch digest of a firmware file.
///
/// Computed as sev-snp-measure 0.0.13 does, with the same flags and output.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Guest mode.
    #[arg(long, value_enum, default_value = "snp", value_name = "MODE")]
    pub mode: Mode,
    /// The -bios firmware image (e.g. /usr/share/ovmf/OVMF.fd).
    #[arg(long, value_name = "PATH")]
    pub ovmf: PathBuf,
    /// Number of guest vCPUs, 1 to 512 (required except in sev and snp:ovmf-hash modes).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(
        *image_config::SNP_VCPUS.start() as i64..=*image_config::SNP_VCPUS.end() as i64))]
    pub vcpus: Option<u32>,
    /// QEMU CPU model of the guest vCPUs.
    #[arg(long, value_name = "CPUTYPE", value_parser = vcpu_type_parser())]
    pub vcpu_type: Option<String>,
    /// Guest vCPU signature (CPUID 1 EAX); 0x…, 0o…, 0b… or decimal.
    #[arg(long, value_name = "VALUE", value_parser = parse_sig)]
    pub vcpu_sig: Option<u32>,
    /// Guest vCPU family (with --vcpu-model and --vcpu-stepping).
    #[arg(long, value_name = "FAMILY", requires_all = ["vcpu_model", "vcpu_stepping"])]
    pub vcpu_family: Option<u32>,
    /// Guest vCPU model.
    #[arg(long, value_name = "MODEL", requires = "vcpu_family")]
    pub vcpu_model: Option<u32>,
    /// Guest vCPU stepping.
    #[arg(long, value_name = "STEPPING", requires = "vcpu_family")]
    pub vcpu_stepping: Option<u32>,
    /// Hypervisor that builds the VMSAs (case-sensitive).
    #[arg(long, value_name = "VMMTYPE", default_value = "QEMU", value_parser = vmm_parser())]
    pub vmm_type: VmmType,
    #[command(flatten)]
    pub direct_boot: Box<DirectBoot>,
    /// SEV_FEATURES of the guest (0x1 = SNPActive; 0x21 adds DebugSwap).
    #[arg(long, value_name = "VALUE", default_value = "0x1", value_parser = parse_auto_int)]
    pub guest_features: u64,
    /// Precalculated firmware hash (from --mode snp:ovmf-hash) to start from (snp only).
    #[arg(long, value_name = "HASH")]
    pub snp_ovmf_hash: Option<String>,
    /// Digest encoding.
    #[arg(long, value_enum, default_value = "hex", value_name = "FORMAT")]
    pub output_format: OutputFormat,
    /// Write the measured VMSAs to vmsa0.bin … in the current directory (seves and snp).
    #[arg(long)]
    pub dump_vmsa: bool,
    #[command(flatten)]
    pub svsm: Box<SvsmArgs>,
    #[command(flatten)]
    pub id: Box<IdArgs>,
}

/// The guest policy and an ID block signed for the digest (snp and snp:svsm modes).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Guest policy and ID block")]
pub struct IdArgs {
    /// Guest policy: a number (0x30000) or fields (`smt,single-socket,abi-major=1,abi-minor=51`;
    /// fields: smt, migrate-ma, debug, single-socket, cxl-allow, mem-aes-256-xts, rapl-dis,
    /// ciphertext-hiding, page-swap-disable). Bit 17 is set; bits 26-63 are refused.
    #[arg(long, value_name = "POLICY", default_value = "0x30000")]
    pub policy: measurements::cvm::SnpPolicy,
    /// Sign an ID block for the digest with this ECDSA P-384 key (PEM file or pkcs11: URI);
    /// prints the id-block= and id-auth= values QEMU's sev-snp-guest takes.
    #[arg(long, value_name = "KEY")]
    pub id_key: Option<PathBuf>,
    /// Endorse the ID key with this ECDSA P-384 author key (PEM file or pkcs11: URI).
    #[arg(long, value_name = "KEY", requires = "id_key")]
    pub author_key: Option<PathBuf>,
    /// FAMILY_ID of the ID block: 32 hex digits [default: zeros].
    #[arg(long, value_name = "HEX16", requires = "id_key")]
    pub family_id: Option<String>,
    /// IMAGE_ID of the ID block: 32 hex digits [default: zeros].
    #[arg(long, value_name = "HEX16", requires = "id_key")]
    pub image_id: Option<String>,
    /// GUEST_SVN of the ID block.
    #[arg(long, value_name = "N", default_value = "0")]
    pub guest_svn: u32,
}

/// Measured direct boot: QEMU `-kernel` with `kernel-hashes=on`.
#[derive(Debug, clap::Args)]
pub struct DirectBoot {
    /// Kernel for measured direct boot (needs firmware with a kernel-hashes section).
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initrd for measured direct boot.
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line for measured direct boot.
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    pub append: Option<String>,
}

/// The COCONUT-SVSM image and the OVMF vars size (`--mode snp:svsm`).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "snp:svsm mode")]
pub struct SvsmArgs {
    /// SVSM image.
    #[arg(long, value_name = "PATH")]
    pub svsm: Option<PathBuf>,
    /// Size of the OVMF_VARS image in bytes.
    #[arg(long, value_name = "SIZE", conflicts_with = "vars_file")]
    pub vars_size: Option<u64>,
    /// OVMF_VARS image whose size to use.
    #[arg(long, value_name = "PATH")]
    pub vars_file: Option<PathBuf>,
}

fn vcpu_type_parser() -> PossibleValuesParser {
    PossibleValuesParser::new(VCPU_TYPES.iter().map(|(n, _)| PossibleValue::new(*n)))
}

fn vmm_parser() -> impl TypedValueParser<Value = VmmType> {
    PossibleValuesParser::new(VmmType::ALL.map(|v| PossibleValue::new(v.as_str())))
        .try_map(|s| s.parse::<VmmType>())
}

/// An integer with Python's `int(s, 0)` base detection.
fn parse_auto_int(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let lower = t.to_ascii_lowercase();
    let (digits, radix) = match lower.get(..2) {
        Some("0x") => (&lower[2..], 16),
        Some("0o") => (&lower[2..], 8),
        Some("0b") => (&lower[2..], 2),
        _ if lower.len() > 1 && lower.starts_with('0') && lower.bytes().any(|b| b != b'0') => {
            return Err(format!(
                "`{s}`: a decimal number cannot start with 0 (write 0x… or 0o…)"
            ))
        }
        _ => (lower.as_str(), 10),
    };
    u64::from_str_radix(digits, radix).map_err(|e| format!("`{s}`: {e}"))
}

fn parse_sig(s: &str) -> Result<u32, String> {
    let v = parse_auto_int(s)?;
    u32::try_from(v).map_err(|_| format!("`{s}`: a vCPU signature is 32 bits"))
}

pub fn run(a: Args, g: Globals) -> Result<ExitCode> {
    let id = id_params(&a)?;
    let bytes = std::fs::read(&a.ovmf).with_context(|| format!("reading {}", a.ovmf.display()))?;
    let fw = Ovmf::parse(&bytes).with_context(|| format!("parsing {}", a.ovmf.display()))?;
    let digest = compute(&a, &fw).with_context(|| {
        format!(
            "computing the {} digest of {}",
            mode_name(a.mode),
            a.ovmf.display()
        )
    })?;
    let text = match a.output_format {
        OutputFormat::Hex => hex::encode(&digest),
        OutputFormat::Base64 => base64(&digest),
    };
    let signed = match &id {
        Some(p) => {
            let m = measurements::cvm::SnpMeasurement(digest.as_slice().try_into()?);
            Some(crate::snp_id::sign(p, &m, a.id.policy)?)
        }
        None => None,
    };
    if g.json {
        let mut v = report(&a, &bytes, &text)?;
        if matches!(a.mode, Mode::Snp | Mode::SnpSvsm) {
            v["policy"] = a.id.policy.to_string().into();
            v["qemu_args"] =
                serde_json::to_value(crate::snp_id::qemu_args(a.id.policy, signed.as_ref()))?;
        }
        if let Some(s) = &signed {
            v["id_block"] = serde_json::to_value(s)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{text}");
        if let Some(s) = &signed {
            // The lines of sev-snp-measure's snp-create-id-block, key digests in hex.
            println!("id-block={},id-auth={}", s.block, s.auth);
            println!("id_key_digest: {}", s.id_key_digest);
            if let Some(d) = &s.author_key_digest {
                println!("author_key_digest: {d}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The ID key and block fields, checked before any digest is computed.
fn id_params(a: &Args) -> Result<Option<crate::snp_id::IdParams>> {
    let i = &a.id;
    crate::snp_id::require_key_for(i.id_key.is_some(), &[("--guest-svn", i.guest_svn != 0)])?;
    let Some(key) = &i.id_key else {
        return Ok(None);
    };
    if !matches!(a.mode, Mode::Snp | Mode::SnpSvsm) {
        bail!("--id-key signs an SEV-SNP launch digest: use --mode snp or snp:svsm");
    }
    let id = |v: &Option<String>, flag| {
        v.as_deref()
            .map_or(Ok([0; 16]), |s| crate::snp_id::parse_id(s, flag))
    };
    Ok(Some(crate::snp_id::IdParams {
        id_key: crate::snp_id::load_key(key, "--id-key")?,
        author_key: i
            .author_key
            .as_deref()
            .map(|k| crate::snp_id::load_key(k, "--author-key"))
            .transpose()?,
        family_id: id(&i.family_id, "--family-id")?,
        image_id: id(&i.image_id, "--image-id")?,
        guest_svn: i.guest_svn,
    }))
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Snp => "snp",
        Mode::Seves => "seves",
        Mode::Sev => "sev",
        Mode::SnpOvmfHash => "snp:ovmf-hash",
        Mode::SnpSvsm => "snp:svsm",
    }
}

fn compute(a: &Args, fw: &Ovmf) -> Result<Vec<u8>> {
    if a.mode == Mode::SnpOvmfHash {
        return Ok(snp::ovmf_hash(fw)?.as_bytes().to_vec());
    }
    if a.snp_ovmf_hash.is_some() && a.mode != Mode::Snp {
        bail!("--snp-ovmf-hash only works with --mode snp");
    }
    if a.dump_vmsa && matches!(a.mode, Mode::Sev | Mode::SnpSvsm) {
        bail!("--dump-vmsa is only available in seves and snp modes");
    }
    let kernel = kernel_hashes(a)?;
    if a.mode == Mode::Sev {
        return Ok(sev::sev_launch_digest(fw, kernel.as_ref())?
            .as_bytes()
            .to_vec());
    }
    let vcpus = a
        .vcpus
        .with_context(|| format!("missing --vcpus N in guest mode '{}'", mode_name(a.mode)))?;
    let sig = vcpu_sig(a)?;
    if a.mode == Mode::SnpSvsm {
        return svsm_digest(a, fw, vcpus, sig);
    }
    if a.dump_vmsa {
        let features = GuestFeatures(if a.mode == Mode::Snp {
            a.guest_features
        } else {
            0
        });
        dump_vmsas(fw, vcpus, features, sig, a.vmm_type)?;
    }
    if a.mode == Mode::Seves {
        let d = sev::seves_launch_digest(fw, vcpus, sig, a.vmm_type, kernel.as_ref())?;
        return Ok(d.as_bytes().to_vec());
    }
    let launch = SnpLaunch {
        vcpus,
        vcpu_sig: sig,
        guest_features: GuestFeatures(a.guest_features),
        vmm: a.vmm_type,
        kernel_hashes: kernel,
        ovmf_hash: match &a.snp_ovmf_hash {
            Some(h) => Some(OvmfHash::from_hex("--snp-ovmf-hash", h)?),
            None => None,
        },
    };
    Ok(snp::launch_digest(fw, &launch)?.as_bytes().to_vec())
}

/// The vCPU signature, with sev-snp-measure's precedence: family/model/stepping, then
/// --vcpu-sig, then --vcpu-type (a zero family or signature counts as absent there too).
fn vcpu_sig(a: &Args) -> Result<VcpuSignature> {
    if let (Some(f), Some(m), Some(s)) = (a.vcpu_family, a.vcpu_model, a.vcpu_stepping) {
        if f != 0 {
            return Ok(VcpuSignature::from_family_model_stepping(f, m, s));
        }
    }
    if let Some(s) = a.vcpu_sig.filter(|&s| s != 0) {
        return Ok(VcpuSignature(s));
    }
    if let Some(t) = &a.vcpu_type {
        return Ok(VcpuSignature::from_type(t)?);
    }
    if a.vmm_type == VmmType::Qemu {
        bail!(
            "missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode '{}'",
            mode_name(a.mode)
        );
    }
    // ec2 and gce put 0x600 in RDX whatever the signature.
    Ok(VcpuSignature(0))
}

fn svsm_digest(a: &Args, fw: &Ovmf, vcpus: u32, sig: VcpuSignature) -> Result<Vec<u8>> {
    if a.vmm_type != VmmType::Qemu {
        bail!("snp:svsm mode is only implemented for QEMU");
    }
    let vars_size = match (&a.svsm.vars_file, a.svsm.vars_size) {
        (Some(f), _) => f
            .metadata()
            .with_context(|| format!("reading {}", f.display()))?
            .len(),
        (None, Some(n)) if n != 0 => n,
        _ => bail!("snp:svsm mode requires --vars-size or --vars-file"),
    };
    let path = a
        .svsm
        .svsm
        .as_ref()
        .context("snp:svsm mode requires --svsm")?;
    let svsm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let launch = measurements::cvm::SvsmLaunch {
        ovmf: fw.bytes(),
        svsm: &svsm,
        vars_size,
        vcpus,
        vcpu_sig: sig,
    };
    let d = measurements::cvm::svsm::launch_digest(&launch)
        .with_context(|| format!("with the SVSM image {}", path.display()))?;
    Ok(d.as_bytes().to_vec())
}

fn kernel_hashes(a: &Args) -> Result<Option<SevHashes>> {
    let d = &a.direct_boot;
    let Some(kernel) = &d.kernel else {
        return Ok(None);
    };
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let k = read(kernel)?;
    let initrd = d.initrd.as_deref().map(read).transpose()?;
    Ok(Some(SevHashes::new(
        &k,
        initrd.as_deref(),
        d.append.as_deref(),
    )))
}

fn dump_vmsas(
    fw: &Ovmf,
    vcpus: u32,
    f: GuestFeatures,
    sig: VcpuSignature,
    vmm: VmmType,
) -> Result<()> {
    let vmsas = snp::vmsas(fw, vcpus, f, sig, vmm)?;
    for i in 0..vcpus {
        let name = format!("vmsa{i}.bin");
        let page = vmsas
            .page(i)
            .context("no AP entry point for the AP VMSAs")?;
        std::fs::write(&name, page).with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}

fn report(a: &Args, fw: &[u8], digest: &str) -> Result<serde_json::Value> {
    let mut v = serde_json::json!({
        "mode": mode_name(a.mode),
        "measurement": digest,
        "ovmf_sha256": hex::encode(Sha256::digest(fw)),
    });
    if matches!(a.mode, Mode::Snp | Mode::Seves | Mode::SnpSvsm) {
        v["vcpus"] = a.vcpus.into();
        v["vcpu_sig"] = vcpu_sig(a)?.to_string().into();
        v["vmm_type"] = a.vmm_type.as_str().into();
        if let Some(t) = &a.vcpu_type {
            v["vcpu_type"] = t.as_str().into();
        }
    }
    if a.mode == Mode::Snp {
        v["guest_features"] = GuestFeatures(a.guest_features).to_string().into();
    }
    if a.mode != Mode::SnpOvmfHash {
        v["kernel_hashes"] = a.direct_boot.kernel.is_some().into();
    }
    Ok(v)
}

/// Standard base64 with padding (RFC 4648 §4), as Python's `base64.b64encode`.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_base_integers_like_python() {
        for (s, want) in [
            ("0x21", 33),
            ("0X21", 33),
            ("33", 33),
            ("0o41", 33),
            ("0b100001", 33),
            ("0", 0),
            ("00", 0),
            ("1_0", 10),
        ] {
            assert_eq!(parse_auto_int(s), Ok(want), "{s}");
        }
        for s in ["021", "0xg", "", "-1"] {
            assert!(parse_auto_int(s).is_err(), "{s}");
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, want) in [
            "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(base64(&b"foobar"[..i]), *want);
        }
    }
}
