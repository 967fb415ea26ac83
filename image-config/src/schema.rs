//! The TOML schema: what a user may write (kebab-case keys, unknown keys refused).

use serde::{Deserialize, Serialize};

/// `image.toml` as written by the user, before defaults are resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    pub image: RawImage,
    pub rootfs: RawRootfs,
    #[serde(default)]
    pub kernel: RawKernel,
    #[serde(default)]
    pub uki: RawUki,
    #[serde(default)]
    pub root: RawRoot,
    #[serde(default)]
    pub verity: RawVerity,
    #[serde(default)]
    pub disk: RawDisk,
    #[serde(default)]
    pub measurements: RawMeasurements,
    #[serde(default)]
    pub signing: RawSigning,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_boot: Option<RawSecureBoot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<RawOutput>,
}

/// `[output]`: disk formats besides disk.raw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawOutput {
    /// `raw` (always written), `qcow2`, `vhd`, `gce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawImage {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
}

/// Disk image formats `build` can write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    #[default]
    Raw,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRootfs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<RawDebian>,
    /// An OCI image layout directory, optionally `:tag` (its `org.opencontainers.image.ref.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<String>,
}

/// A Debian package set bootstrapped with mmdebstrap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDebian {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawKernel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmdline: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawUki {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbat: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRoot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<Filesystem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RootMode>,
}

/// Root filesystem types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filesystem {
    #[default]
    Erofs,
}

/// How the root is mounted at boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootMode {
    /// The verified erofs root, read-only.
    #[default]
    ReadOnly,
    /// The verified root under a tmpfs overlay: writable, changes vanish at reboot.
    VolatileOverlay,
}

impl RootMode {
    /// The spelling used in TOML and in the initrd's `nodeimg-init.conf`.
    pub fn as_str(self) -> &'static str {
        match self {
            RootMode::ReadOnly => "read-only",
            RootMode::VolatileOverlay => "volatile-overlay",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawVerity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashAlgorithm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_block_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_block_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// dm-verity hash algorithms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashAlgorithm {
    #[default]
    Sha256,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDisk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esp_size: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment: Option<Size>,
}

/// A byte size: an integer, or a string with a binary suffix (`"64MiB"`, `"1M"`, `"4096"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    /// The size in bytes, or a message saying what is wrong with the text.
    pub fn bytes(&self) -> Result<u64, String> {
        let s = match self {
            Size::Bytes(n) => return Ok(*n),
            Size::Text(s) => s.trim(),
        };
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KiB" => 1 << 10,
            "M" | "MiB" => 1 << 20,
            "G" | "GiB" => 1 << 30,
            u => return Err(format!("unknown size unit `{u}` in `{s}`")),
        };
        n.checked_mul(mult)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawMeasurements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banks: Option<Vec<Bank>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp: Option<RawSnp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<RawTdx>,
    /// Firmware PCR values recorded on platforms (`nodeimg record-pcrs` files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_values: Option<Vec<String>>,
}

/// TPM PCR banks nodeimg predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bank {
    Sha256,
    Sha384,
}

impl Bank {
    pub fn as_str(self) -> &'static str {
        match self {
            Bank::Sha256 => "sha256",
            Bank::Sha384 => "sha384",
        }
    }
}

/// SEV-SNP launch digests to record: every combination of the lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSnp {
    /// Firmware files (OVMF.fd built with SEV metadata).
    pub ovmf: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_features: Option<Vec<String>>,
    /// The guest policy by field (default: SMT allowed, nothing else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RawSnpPolicy>,
    /// ECDSA P-384 ID key (PEM file or `pkcs11:` URI): sign an ID block for every digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_key: Option<String>,
    /// ECDSA P-384 author key endorsing the ID key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_key: Option<String>,
    /// FAMILY_ID: 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_id: Option<String>,
    /// IMAGE_ID: 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_svn: Option<u32>,
}

/// `[measurements.snp.policy]`: the SEV-SNP guest policy by field (bit 17 is always set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSnpPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_ma: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_socket: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cxl_allow: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_aes_256_xts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rapl_dis: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_hiding: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_swap_disable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi_major: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi_minor: Option<u8>,
}

/// TDX MRTD values to record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawTdx {
    /// Firmware files (TDVF/OVMF with TDX metadata).
    pub ovmf: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_pass: Option<bool>,
    /// The firmware's RTMR separator layout: `edk2-202411` (also ≤ 202211) or `edk2-202302`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edk2: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSigning {
    /// PKCS#8 PEM private key (`nodeimg keygen`); the build signs manifest.json with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Sign keyless (Fulcio certificate for the CI's OIDC identity, Rekor entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<bool>,
    /// With `key`: publish the signature to Rekor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog_upload: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fulcio_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
}

/// `[secure-boot]`: sign the UKI for Secure Boot and predict PCR 7 with these keys enrolled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSecureBoot {
    /// A `nodeimg keygen --secure-boot` directory: `db.key` + `db.crt` sign the UKI and
    /// `PK.esl`, `KEK.esl`, `db.esl`, `dbx.esl` are what the firmware has enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
    /// The signing key (PEM, RSA) — instead of `keys/db.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its X.509 certificate (PEM or DER) — instead of `keys/db.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Enrolled signature lists (EFI_SIGNATURE_LIST files) — instead of `keys/*.esl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kek: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbx: Option<String>,
}
