//! Resolution (defaults that depend on other keys) and validation (cross-field rules).

use std::path::{Path, PathBuf};

use crate::schema::{Bank, Filesystem, HashAlgorithm, OutputFormat, RawConfig, RootMode, Size};
use crate::{ConfigError, Env};

/// Initrd modules loaded when `kernel.modules` is not set (plus `overlay` for
/// `root.mode = "volatile-overlay"`): virtio disks, dm-verity and erofs.
/// The vCPU counts an SEV-SNP launch digest is computed for (config and `measure snp` alike).
pub const SNP_VCPUS: std::ops::RangeInclusive<u32> = 1..=512;

pub const DEFAULT_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "dm-verity", "erofs"];

/// The validated, immutable configuration the builder works from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// The config file (for messages); `<embedded>` for built-in configs.
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    pub source_date_epoch: u64,
    pub output_format: OutputFormat,
    pub rootfs: RootfsSource,
    pub kernel: KernelConfig,
    pub uki: UkiConfig,
    pub root: RootConfig,
    pub verity: VerityConfig,
    pub disk: DiskConfig,
    pub measurements: MeasurementsConfig,
    /// Private key that signs manifest.json at the end of the build.
    pub signing_key: Option<PathBuf>,
    /// `[signing]` through Sigstore services (keyless or tlog upload), when asked for.
    pub sigstore: Option<SigstoreSigning>,
    /// `[output] formats` besides `raw` (which is always written), sorted, unique.
    pub formats: Vec<String>,
    /// `[secure-boot]`: the UKI is signed and PCR 7 predicted with these keys enrolled.
    pub secure_boot: Option<SecureBootConfig>,
}

/// `[signing]` with `keyless = true` or `tlog-upload = true`: the services and (keyless) where
/// the identity token comes from; URLs unset mean the signing config's or public-good ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstoreSigning {
    pub keyless: bool,
    pub identity_token_file: Option<PathBuf>,
    pub fulcio_url: Option<String>,
    pub rekor_url: Option<String>,
    pub tsa_url: Option<String>,
    pub signing_config: Option<PathBuf>,
    pub trusted_root: Option<PathBuf>,
}

/// `[secure-boot]`, paths resolved. `dbx = None`: no dbx is enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureBootConfig {
    pub key: PathBuf,
    pub certificate: PathBuf,
    pub pk: PathBuf,
    pub kek: PathBuf,
    pub db: PathBuf,
    pub dbx: Option<PathBuf>,
}

/// What the manifest predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementsConfig {
    /// PCR banks, sorted, unique (default sha256 and sha384).
    pub banks: Vec<Bank>,
    pub snp: Option<SnpConfig>,
    pub tdx: Option<TdxConfig>,
    /// `nodeimg record-pcrs` files whose values go into the manifest's `platforms`.
    pub platform_values: Vec<PathBuf>,
}

/// Every combination of these is recorded. Names are checked by the builder against the
/// launch-digest code (`measurements.snp.vcpu-types` etc. in its errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpConfig {
    pub ovmf: Vec<PathBuf>,
    pub vcpus: Vec<u32>,
    pub vcpu_types: Vec<String>,
    pub vmm_types: Vec<String>,
    pub guest_features: Vec<u64>,
    /// The guest policy (recorded with every digest, signed into the ID blocks).
    pub policy: SnpPolicyFields,
    /// Sign an ID block per digest with these (absent: no ID blocks).
    pub id_block: Option<SnpIdBlockConfig>,
}

/// `[measurements.snp.policy]` resolved: the set single-bit fields by name (the spelling of
/// `nodeimg measure snp --policy`) and the minimum ABI version. Default: `smt` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpPolicyFields {
    pub flags: Vec<&'static str>,
    pub abi_major: u8,
    pub abi_minor: u8,
}

/// `[measurements.snp] id-key` and the fields of the ID block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpIdBlockConfig {
    /// A PEM file (resolved against the config's directory) or a `pkcs11:` URI.
    pub id_key: PathBuf,
    pub author_key: Option<PathBuf>,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub guest_svn: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxConfig {
    pub ovmf: Vec<PathBuf>,
    pub two_pass: bool,
    /// One of [`TDX_EDK2_LAYOUTS`].
    pub edk2: String,
}

/// The TDVF separator layouts RTMRs are predicted for (`measurements::cvm::rtmr::Edk2Layout`).
pub const TDX_EDK2_LAYOUTS: [&str; 2] = ["edk2-202411", "edk2-202302"];

/// Where the root filesystem comes from (paths are absolute or relative to the working dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootfsSource {
    /// A tar archive, plain, gzip or zstd (detected from its magic bytes).
    Tar(PathBuf),
    /// A directory, read without following symlinks.
    Directory(PathBuf),
    /// A Debian package set made by mmdebstrap.
    Debian(DebianSource),
    /// An OCI image layout directory; `tag` selects a manifest by its
    /// `org.opencontainers.image.ref.name` annotation (`None`: the index's only manifest).
    Oci { dir: PathBuf, tag: Option<String> },
}

/// `[rootfs] debian = { … }`, defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianSource {
    pub suite: String,
    /// `None` = mmdebstrap's default for the suite.
    pub mirror: Option<String>,
    pub variant: String,
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    /// Absolute path of the kernel inside the rootfs; `None` = find the single one.
    pub path: Option<String>,
    /// Extra command-line arguments, after `roothash=`.
    pub cmdline: Vec<String>,
    /// Module names for the initrd (dependencies are added by the builder).
    pub modules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StubSource {
    /// The rootfs's `/usr/lib/systemd/boot/efi/linuxx64.efi.stub`, else the host's.
    Auto,
    /// A stub file on the host.
    Host(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UkiConfig {
    pub stub: StubSource,
    /// os-release file on the host; `None` = the rootfs's `/etc/os-release` or `/usr/lib/os-release`.
    pub os_release: Option<PathBuf>,
    /// Extra SBAT lines appended after the stub's and kernel's (default: ukify's `uki,1,…` line).
    pub sbat: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootConfig {
    pub filesystem: Filesystem,
    pub mode: RootMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityConfig {
    pub hash: HashAlgorithm,
    pub data_block_size: u32,
    pub hash_block_size: u32,
    /// Explicit salt; `None` = derived from the image name and rootfs digest.
    pub salt: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskConfig {
    pub esp_size: u64,
    pub alignment: u64,
}

pub(crate) fn resolve(
    raw: RawConfig,
    file: &Path,
    base: &Path,
    env: &Env,
) -> Result<ImageConfig, ConfigError> {
    let err = |key: &str, msg: String| ConfigError::new(file, key, msg);
    let path = |p: &str| -> PathBuf { base.join(p) };

    let name = raw.image.name.clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(
            err("image.name", format!("`{name}` is not a valid image name"))
                .hint("use letters, digits, `.`, `_` and `-`"),
        );
    }
    let source_date_epoch = match (raw.image.source_date_epoch, &env.source_date_epoch) {
        (Some(e), _) => e,
        (None, Some(s)) => s.trim().parse().map_err(|_| {
            err(
                "image.source-date-epoch",
                format!("$SOURCE_DATE_EPOCH = `{s}` is not an integer"),
            )
            .hint("set SOURCE_DATE_EPOCH to seconds since 1970, or set the key")
        })?,
        (None, None) => 0,
    };

    let rootfs = resolve_rootfs(&raw, file, base)?;
    let root = RootConfig {
        filesystem: raw.root.filesystem.unwrap_or_default(),
        mode: raw.root.mode.unwrap_or_default(),
    };
    let kernel = resolve_kernel(&raw, file, root.mode)?;
    let uki = UkiConfig {
        stub: match &raw.uki.stub {
            Some(s) => StubSource::Host(existing(file, "uki.stub", path(s), false)?),
            None => StubSource::Auto,
        },
        os_release: match &raw.uki.os_release {
            Some(s) => Some(existing(file, "uki.os-release", path(s), false)?),
            None => None,
        },
        sbat: raw.uki.sbat.clone(),
    };
    if let Some(s) = &uki.sbat {
        if s.contains('\0') || s.lines().any(|l| l.split(',').count() < 2) {
            return Err(err("uki.sbat", "not SBAT CSV".into())
                .hint("one `component,generation,vendor,package,version,url` line per entry"));
        }
    }
    let verity = resolve_verity(&raw, file)?;
    let disk = resolve_disk(&raw, file)?;
    let measurements = resolve_measurements(&raw, file, base)?;
    let signing_key = match &raw.signing.key {
        Some(k) if k.starts_with("pkcs11:") => Some(PathBuf::from(k)),
        Some(k) => Some(existing(file, "signing.key", path(k), false)?),
        None => None,
    };
    let sigstore = resolve_sigstore(&raw, file, base)?;
    let formats = resolve_formats(&raw, file)?;
    let secure_boot = resolve_secure_boot(&raw, file, base)?;
    Ok(ImageConfig {
        file: file.to_path_buf(),
        name,
        version: raw.image.version.clone().unwrap_or_else(|| "0".into()),
        source_date_epoch,
        output_format: raw.image.output_format.unwrap_or_default(),
        rootfs,
        kernel,
        uki,
        root,
        verity,
        disk,
        measurements,
        signing_key,
        sigstore,
        formats,
        secure_boot,
    })
}

fn resolve_secure_boot(
    raw: &RawConfig,
    file: &Path,
    base: &Path,
) -> Result<Option<SecureBootConfig>, ConfigError> {
    let Some(sb) = &raw.secure_boot else {
        return Ok(None);
    };
    let keys = match &sb.keys {
        Some(d) => Some(existing(file, "secure-boot.keys", base.join(d), true)?),
        None => None,
    };
    // Each path: the key's own value, else the file of that name in `keys`.
    let pick = |key: &str,
                own: &Option<String>,
                in_dir: &str|
     -> Result<Option<PathBuf>, ConfigError> {
        let full = format!("secure-boot.{key}");
        match (own, &keys) {
            // A key in a PKCS#11 token: the URI is its name.
            (Some(p), _) if key == "key" && p.starts_with("pkcs11:") => Ok(Some(PathBuf::from(p))),
            (Some(p), _) => existing(file, &full, base.join(p), false).map(Some),
            (None, Some(d)) if d.join(in_dir).exists() => {
                existing(file, &full, d.join(in_dir), false).map(Some)
            }
            _ => Ok(None),
        }
    };
    let need = |key: &str, v: Option<PathBuf>, in_dir: &str| {
        v.ok_or_else(|| {
            ConfigError::new(file, &format!("secure-boot.{key}"), "is not set").hint(format!(
                "set `keys` to a `nodeimg keygen --secure-boot` directory (with {in_dir}) or \
                     set `{key}`"
            ))
        })
    };
    Ok(Some(SecureBootConfig {
        key: need("key", pick("key", &sb.key, "db.key")?, "db.key")?,
        certificate: need(
            "certificate",
            pick("certificate", &sb.certificate, "db.crt")?,
            "db.crt",
        )?,
        pk: need("pk", pick("pk", &sb.pk, "PK.esl")?, "PK.esl")?,
        kek: need("kek", pick("kek", &sb.kek, "KEK.esl")?, "KEK.esl")?,
        db: need("db", pick("db", &sb.db, "db.esl")?, "db.esl")?,
        dbx: pick("dbx", &sb.dbx, "dbx.esl")?,
    }))
}

fn resolve_rootfs(raw: &RawConfig, file: &Path, base: &Path) -> Result<RootfsSource, ConfigError> {
    let err = |msg: String| ConfigError::new(file, "rootfs", msg);
    let r = &raw.rootfs;
    let set: Vec<&str> = [
        ("`tar`", r.tar.is_some()),
        ("`directory`", r.directory.is_some()),
        ("`oci`", r.oci.is_some()),
        ("`debian`", r.debian.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, on)| on.then_some(k))
    .collect();
    if set.len() > 1 {
        return Err(err(format!("both {} are set", set.join(" and ")))
            .hint("set exactly one rootfs source"));
    }
    if let Some(t) = &r.tar {
        return Ok(RootfsSource::Tar(existing(
            file,
            "rootfs.tar",
            base.join(t),
            false,
        )?));
    }
    if let Some(d) = &r.directory {
        return Ok(RootfsSource::Directory(existing(
            file,
            "rootfs.directory",
            base.join(d),
            true,
        )?));
    }
    if let Some(o) = &r.oci {
        return oci_source(file, base, o);
    }
    if let Some(d) = &r.debian {
        return resolve_debian(d, file);
    }
    Err(err("no rootfs source".into()).hint(
        "set `tar = \"rootfs.tar\"`, `directory = \"rootfs/\"`, `oci = \"layout-dir:tag\"` or `debian = { … }`",
    ))
}

/// `layout-dir[:tag]`: the whole value when it names a directory, else split at the first `:`
/// whose left side is a directory (tags may themselves contain `:` and `/`).
fn oci_source(file: &Path, base: &Path, value: &str) -> Result<RootfsSource, ConfigError> {
    let key = "rootfs.oci";
    let splits = std::iter::once((value, None)).chain(
        value
            .match_indices(':')
            .map(|(i, _)| (&value[..i], Some(&value[i + 1..]))),
    );
    for (dir, tag) in splits {
        if dir.is_empty() || !base.join(dir).is_dir() {
            continue;
        }
        if tag == Some("") {
            return Err(
                ConfigError::new(file, key, format!("`{value}` has an empty tag"))
                    .hint("write `dir` or `dir:tag`"),
            );
        }
        let dir = base.join(dir);
        if !dir.join("oci-layout").is_file() {
            return Err(ConfigError::new(
                file,
                key,
                format!("{} has no `oci-layout` file", dir.display()),
            )
            .hint("point at an OCI image layout (e.g. `skopeo copy docker://IMAGE oci:DIR:TAG`)"));
        }
        return Ok(RootfsSource::Oci {
            dir,
            tag: tag.map(str::to_string),
        });
    }
    let shown = value.split(':').next().unwrap_or(value);
    Err(ConfigError::new(
        file,
        key,
        format!("{}: no such directory", base.join(shown).display()),
    )
    .hint("paths are relative to the directory of the config file; the form is `layout-dir[:tag]`"))
}

/// The disk formats `[output] formats` may name.
pub const FORMATS: [&str; 5] = ["raw", "qcow2", "vhd", "gce", "vmdk"];

fn resolve_formats(raw: &RawConfig, file: &Path) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for (i, f) in raw
        .output
        .iter()
        .flat_map(|o| o.formats.iter().flatten())
        .enumerate()
    {
        if !FORMATS.contains(&f.as_str()) {
            return Err(ConfigError::new(
                file,
                &format!("output.formats[{i}]"),
                format!("unknown format `{f}`"),
            )
            .hint("one of raw, qcow2, vhd, gce, vmdk"));
        }
        if f != "raw" && !out.contains(f) {
            out.push(f.clone());
        }
    }
    out.sort();
    Ok(out)
}

fn resolve_sigstore(
    raw: &RawConfig,
    file: &Path,
    base: &Path,
) -> Result<Option<SigstoreSigning>, ConfigError> {
    let s = &raw.signing;
    let keyless = s.keyless.unwrap_or(false);
    let tlog_upload = s.tlog_upload.unwrap_or(false);
    if keyless && s.key.is_some() {
        return Err(ConfigError::new(
            file,
            "signing.keyless",
            "keyless signing uses an ephemeral key, and signing.key is set",
        )
        .hint("remove signing.key, or set keyless = false"));
    }
    if tlog_upload && s.key.is_none() {
        return Err(ConfigError::new(
            file,
            "signing.tlog-upload",
            "there is no signing.key whose signature could be uploaded",
        )
        .hint("set signing.key, or use keyless = true (which always uploads)"));
    }
    let services = [
        (
            "signing.identity-token-file",
            s.identity_token_file.is_some(),
        ),
        ("signing.fulcio-url", s.fulcio_url.is_some()),
        ("signing.rekor-url", s.rekor_url.is_some()),
        ("signing.tsa-url", s.tsa_url.is_some()),
        ("signing.signing-config", s.signing_config.is_some()),
        ("signing.trusted-root", s.trusted_root.is_some()),
    ];
    if !keyless && !tlog_upload {
        if let Some((key, _)) = services.iter().find(|(_, set)| *set) {
            return Err(ConfigError::new(
                file,
                key,
                "Sigstore services are only used with keyless = true or tlog-upload = true",
            )
            .hint("set keyless = true or tlog-upload = true, or remove the key"));
        }
        return Ok(None);
    }
    if s.identity_token_file.is_some() && !keyless {
        return Err(ConfigError::new(
            file,
            "signing.identity-token-file",
            "an identity token is only used with keyless = true",
        )
        .hint("set keyless = true (and remove signing.key), or remove the key"));
    }
    for (key, url) in [
        ("signing.fulcio-url", &s.fulcio_url),
        ("signing.rekor-url", &s.rekor_url),
        ("signing.tsa-url", &s.tsa_url),
    ] {
        if let Some(u) = url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(
                    ConfigError::new(file, key, format!("`{u}` is not an http(s) URL"))
                        .hint("e.g. https://rekor.sigstore.dev"),
                );
            }
        }
    }
    let file_at = |key: &str, p: &Option<String>| -> Result<Option<PathBuf>, ConfigError> {
        p.as_ref()
            .map(|p| existing(file, key, base.join(p), false))
            .transpose()
    };
    Ok(Some(SigstoreSigning {
        keyless,
        // Read when the build signs (a CI may write it late); only its place is checked here.
        identity_token_file: s.identity_token_file.as_ref().map(|p| base.join(p)),
        fulcio_url: s.fulcio_url.clone(),
        rekor_url: s.rekor_url.clone(),
        tsa_url: s.tsa_url.clone(),
        signing_config: file_at("signing.signing-config", &s.signing_config)?,
        trusted_root: file_at("signing.trusted-root", &s.trusted_root)?,
    }))
}

fn existing(file: &Path, key: &str, p: PathBuf, dir: bool) -> Result<PathBuf, ConfigError> {
    let what = if dir { "directory" } else { "file" };
    match std::fs::metadata(&p) {
        Ok(m) if m.is_dir() == dir => Ok(p),
        Ok(_) => Err(ConfigError::new(
            file,
            key,
            format!("{} is not a {what}", p.display()),
        )),
        Err(e) => Err(ConfigError::new(file, key, format!("{}: {e}", p.display()))
            .hint("paths are relative to the directory of the config file")),
    }
}

fn resolve_kernel(
    raw: &RawConfig,
    file: &Path,
    mode: RootMode,
) -> Result<KernelConfig, ConfigError> {
    let k = &raw.kernel;
    if let Some(p) = &k.path {
        if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(ConfigError::new(
                file,
                "kernel.path",
                format!("`{p}` is not an absolute path inside the rootfs"),
            )
            .hint("for example \"/boot/vmlinuz-6.1.0-26-cloud-amd64\""));
        }
    }
    for (i, arg) in k.cmdline.iter().enumerate() {
        let key = format!("kernel.cmdline[{i}]");
        if arg.is_empty()
            || arg
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            return Err(ConfigError::new(
                file,
                &key,
                format!("`{arg}` is not one printable argument"),
            )
            .hint("one list item per argument, no spaces"));
        }
        if arg.starts_with("roothash=") {
            return Err(
                ConfigError::new(file, &key, "nodeimg sets roothash= itself")
                    .hint("remove this argument"),
            );
        }
    }
    let mut modules: Vec<String> = match &k.modules {
        Some(m) => m.clone(),
        None => DEFAULT_MODULES.iter().map(|s| s.to_string()).collect(),
    };
    if mode == RootMode::VolatileOverlay && !modules.iter().any(|m| m == "overlay") {
        modules.push("overlay".into());
    }
    for (i, m) in modules.iter().enumerate() {
        if m.is_empty() || m.contains(['/', ' ', '\0']) {
            return Err(ConfigError::new(
                file,
                &format!("kernel.modules[{i}]"),
                format!("`{m}` is not a module name"),
            )
            .hint("give module names as in modules.dep, without .ko (\"dm-verity\")"));
        }
    }
    Ok(KernelConfig {
        path: k.path.clone(),
        cmdline: k.cmdline.clone(),
        modules,
    })
}

fn resolve_verity(raw: &RawConfig, file: &Path) -> Result<VerityConfig, ConfigError> {
    let v = &raw.verity;
    let block = |key: &str, val: Option<u32>| -> Result<u32, ConfigError> {
        let n = val.unwrap_or(4096);
        if !n.is_power_of_two() || !(512..=4096).contains(&n) {
            return Err(ConfigError::new(
                file,
                key,
                format!("{n} is not a power of two from 512 to 4096"),
            )
            .hint("the kernel needs verity blocks no larger than the 4096-byte page; use 4096"));
        }
        Ok(n)
    };
    let salt = match &v.salt {
        None => None,
        Some(s) => {
            let bytes = hex_decode(s).ok_or_else(|| {
                ConfigError::new(file, "verity.salt", format!("`{s}` is not hex"))
                    .hint("an even number of hex digits, or remove the key to derive the salt")
            })?;
            if bytes.len() > 256 {
                return Err(ConfigError::new(
                    file,
                    "verity.salt",
                    "longer than 256 bytes",
                ));
            }
            Some(bytes)
        }
    };
    Ok(VerityConfig {
        hash: v.hash.unwrap_or_default(),
        data_block_size: block("verity.data-block-size", v.data_block_size)?,
        hash_block_size: block("verity.hash-block-size", v.hash_block_size)?,
        salt,
    })
}

fn resolve_disk(raw: &RawConfig, file: &Path) -> Result<DiskConfig, ConfigError> {
    let size = |key: &str, v: &Option<Size>, default: u64| -> Result<u64, ConfigError> {
        v.as_ref().map_or(Ok(default), |s| {
            s.bytes().map_err(|m| {
                ConfigError::new(file, key, m).hint("write sizes like \"64MiB\" or 67108864")
            })
        })
    };
    let alignment = size("disk.alignment", &raw.disk.alignment, 1 << 20)?;
    if !alignment.is_power_of_two() || alignment < 4096 {
        return Err(ConfigError::new(
            file,
            "disk.alignment",
            format!("{alignment} is not a power of two ≥ 4096"),
        )
        .hint("1MiB is what partitioning tools use"));
    }
    let esp_size = size("disk.esp-size", &raw.disk.esp_size, 64 << 20)?;
    if esp_size < 40 << 20 {
        return Err(ConfigError::new(
            file,
            "disk.esp-size",
            format!("{esp_size} bytes is too small for FAT32"),
        )
        .hint("use at least 40MiB; the UKI must also fit"));
    }
    Ok(DiskConfig {
        esp_size,
        alignment,
    })
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn resolve_measurements(
    raw: &RawConfig,
    file: &Path,
    base: &Path,
) -> Result<MeasurementsConfig, ConfigError> {
    let m = &raw.measurements;
    let mut banks = m
        .banks
        .clone()
        .unwrap_or_else(|| vec![Bank::Sha256, Bank::Sha384]);
    banks.sort();
    banks.dedup();
    if banks.is_empty() {
        return Err(ConfigError::new(file, "measurements.banks", "no PCR bank")
            .hint("list at least one of \"sha256\", \"sha384\""));
    }
    let files = |key: &str, list: &[String]| -> Result<Vec<PathBuf>, ConfigError> {
        if list.is_empty() {
            return Err(
                ConfigError::new(file, key, "empty list").hint("name at least one firmware file")
            );
        }
        list.iter()
            .map(|p| existing(file, key, base.join(p), false))
            .collect()
    };
    let snp = match &m.snp {
        None => None,
        Some(s) => {
            let guest_features = s
                .guest_features
                .clone()
                .unwrap_or_else(|| vec!["0x1".into()])
                .iter()
                .map(|g| {
                    let t = g.trim_start_matches("0x");
                    u64::from_str_radix(t, 16).map_err(|_| {
                        ConfigError::new(
                            file,
                            "measurements.snp.guest-features",
                            format!("`{g}` is not a hex number"),
                        )
                        .hint("write guest features like \"0x1\"")
                    })
                })
                .collect::<Result<_, _>>()?;
            Some(SnpConfig {
                ovmf: files("measurements.snp.ovmf", &s.ovmf)?,
                vcpus: s.vcpus.clone().unwrap_or_else(|| vec![1]),
                vcpu_types: s
                    .vcpu_types
                    .clone()
                    .unwrap_or_else(|| vec!["EPYC-v4".into()]),
                vmm_types: s.vmm_types.clone().unwrap_or_else(|| vec!["QEMU".into()]),
                guest_features,
                policy: snp_policy(s.policy.as_ref()),
                id_block: snp_id_block(s, file, base)?,
            })
        }
    };
    if let Some(s) = &snp {
        if s.vcpus.is_empty() || s.vcpus.iter().any(|v| !SNP_VCPUS.contains(v)) {
            return Err(ConfigError::new(
                file,
                "measurements.snp.vcpus",
                "vCPU counts must be 1 to 512",
            )
            .hint("for example [1, 2, 4]"));
        }
    }
    let tdx = match &m.tdx {
        None => None,
        Some(t) => Some(TdxConfig {
            ovmf: files("measurements.tdx.ovmf", &t.ovmf)?,
            two_pass: t.two_pass.unwrap_or(false),
            edk2: match t.edk2.as_deref() {
                None => TDX_EDK2_LAYOUTS[0].to_string(),
                Some(l) if TDX_EDK2_LAYOUTS.contains(&l) => l.to_string(),
                Some(l) => {
                    return Err(ConfigError::new(
                        file,
                        "measurements.tdx.edk2",
                        format!("unknown firmware layout `{l}`"),
                    )
                    .hint("`edk2-202411` (edk2 ≤ stable202211 or ≥ stable202411) or `edk2-202302` (stable202302 … stable202408.01)"))
                }
            },
        }),
    };
    let mut platform_values = Vec::new();
    for (i, p) in m_platform_values(raw).iter().enumerate() {
        platform_values.push(existing(
            file,
            &format!("measurements.platform-values[{i}]"),
            base.join(p),
            false,
        )?);
    }
    Ok(MeasurementsConfig {
        banks,
        snp,
        tdx,
        platform_values,
    })
}

fn snp_policy(p: Option<&crate::schema::RawSnpPolicy>) -> SnpPolicyFields {
    let d = crate::schema::RawSnpPolicy::default();
    let p = p.unwrap_or(&d);
    let flags = [
        ("smt", p.smt.unwrap_or(true)),
        ("migrate-ma", p.migrate_ma.unwrap_or(false)),
        ("debug", p.debug.unwrap_or(false)),
        ("single-socket", p.single_socket.unwrap_or(false)),
        ("cxl-allow", p.cxl_allow.unwrap_or(false)),
        ("mem-aes-256-xts", p.mem_aes_256_xts.unwrap_or(false)),
        ("rapl-dis", p.rapl_dis.unwrap_or(false)),
        ("ciphertext-hiding", p.ciphertext_hiding.unwrap_or(false)),
        ("page-swap-disable", p.page_swap_disable.unwrap_or(false)),
    ];
    SnpPolicyFields {
        flags: flags.iter().filter(|f| f.1).map(|f| f.0).collect(),
        abi_major: p.abi_major.unwrap_or(0),
        abi_minor: p.abi_minor.unwrap_or(0),
    }
}

fn snp_id_block(
    s: &crate::schema::RawSnp,
    file: &Path,
    base: &Path,
) -> Result<Option<SnpIdBlockConfig>, ConfigError> {
    let key_path = |key: &str, v: &str| -> Result<PathBuf, ConfigError> {
        if v.starts_with("pkcs11:") {
            return Ok(PathBuf::from(v));
        }
        existing(file, key, base.join(v), false)
    };
    let Some(id_key) = &s.id_key else {
        for (key, set) in [
            ("measurements.snp.author-key", s.author_key.is_some()),
            ("measurements.snp.family-id", s.family_id.is_some()),
            ("measurements.snp.image-id", s.image_id.is_some()),
            ("measurements.snp.guest-svn", s.guest_svn.is_some()),
        ] {
            if set {
                return Err(ConfigError::new(
                    file,
                    key,
                    "belongs to an ID block, but no id-key is set",
                )
                .hint("set measurements.snp.id-key (an ECDSA P-384 PEM key or pkcs11: URI)"));
            }
        }
        return Ok(None);
    };
    let id = |key: &str, v: &Option<String>| -> Result<[u8; 16], ConfigError> {
        let Some(v) = v else { return Ok([0; 16]) };
        let t = v.strip_prefix("0x").unwrap_or(v);
        hex_decode(t)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| {
                ConfigError::new(file, key, format!("`{v}` is not 16 bytes of hex"))
                    .hint("write exactly 32 hex digits, e.g. \"00112233445566778899aabbccddeeff\"")
            })
    };
    Ok(Some(SnpIdBlockConfig {
        id_key: key_path("measurements.snp.id-key", id_key)?,
        author_key: s
            .author_key
            .as_deref()
            .map(|k| key_path("measurements.snp.author-key", k))
            .transpose()?,
        family_id: id("measurements.snp.family-id", &s.family_id)?,
        image_id: id("measurements.snp.image-id", &s.image_id)?,
        guest_svn: s.guest_svn.unwrap_or(0),
    }))
}

fn m_platform_values(raw: &RawConfig) -> &[String] {
    raw.measurements.platform_values.as_deref().unwrap_or(&[])
}

fn resolve_debian(d: &crate::schema::RawDebian, file: &Path) -> Result<RootfsSource, ConfigError> {
    let word = |key: &str, v: &str| -> Result<(), ConfigError> {
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.:_".contains(c))
        {
            return Err(
                ConfigError::new(file, key, format!("`{v}` is not a valid Debian name"))
                    .hint("package and suite names use letters, digits and `+-.:_`"),
            );
        }
        Ok(())
    };
    let suite = d.suite.clone().unwrap_or_else(|| "bookworm".into());
    word("rootfs.debian.suite", &suite)?;
    let variant = d.variant.clone().unwrap_or_else(|| "minbase".into());
    if ![
        "extract",
        "custom",
        "essential",
        "apt",
        "required",
        "minbase",
        "buildd",
        "important",
        "debootstrap",
        "standard",
    ]
    .contains(&variant.as_str())
    {
        return Err(ConfigError::new(
            file,
            "rootfs.debian.variant",
            format!("unknown mmdebstrap variant `{variant}`"),
        )
        .hint("use minbase (the default), required, important or standard"));
    }
    for (i, p) in d.packages.iter().enumerate() {
        word(&format!("rootfs.debian.packages[{i}]"), p)?;
    }
    if let Some(m) = &d.mirror {
        if m.split_whitespace().count() != 1 {
            return Err(ConfigError::new(
                file,
                "rootfs.debian.mirror",
                "one mirror URI without spaces",
            )
            .hint("for example \"http://<mirror>/debian\""));
        }
    }
    Ok(RootfsSource::Debian(DebianSource {
        suite,
        mirror: d.mirror.clone(),
        variant,
        packages: d.packages.clone(),
    }))
}
