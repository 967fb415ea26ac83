//! The build recipe: a short, linear list of stage calls. Every output is written into a
//! staging directory inside the output directory and renamed into place only at the end.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image_config::{ImageConfig, StubSource};
use measurements::manifest::{self, Manifest};

use crate::rootfs::{self, Tree};
use crate::{disk, erofs, esp, initrd, uki, verity};

mod derive;

use disk::guid_to_string as uuid_text;
pub(crate) mod output;
mod progress;

use output::Staging;
use progress::Progress;

/// Where the host's systemd-boot-efi package puts the stub (also looked up inside the rootfs).
pub const STUB_PATH: &str = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// What `build` needs besides the config.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub out_dir: PathBuf,
    /// The static nodeimg-init binary (embedded, or an override).
    pub init: crate::initbin::InitSource,
    /// The cache for Debian package downloads and bootstrapped rootfs tars (None: no cache).
    pub cache_dir: Option<PathBuf>,
}

/// The cache, for sources that use one (Debian package sets). A cache inside the output
/// directory is refused (outputs must be all there is in it); one that cannot be created is
/// skipped with a warning (it only saves time).
fn open_cache(cfg: &ImageConfig, opts: &BuildOptions) -> Result<Option<rootfs::DebCache>> {
    let (Some(dir), image_config::RootfsSource::Debian(_)) = (&opts.cache_dir, &cfg.rootfs) else {
        return Ok(None);
    };
    let abs = |p: &Path| -> Result<PathBuf> {
        let p = std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))?;
        // Resolve what exists (symlinks), keep the rest as written.
        let mut existing = p.as_path();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut r = existing
            .canonicalize()
            .unwrap_or_else(|_| existing.to_path_buf());
        r.extend(rest.iter().rev());
        Ok(r)
    };
    let (cache_abs, out_abs) = (abs(dir)?, abs(&opts.out_dir)?);
    anyhow::ensure!(
        !cache_abs.starts_with(&out_abs),
        "the cache directory {} is inside the output directory {}: choose another --cache-dir \
         (outputs are all that goes into the output directory)",
        dir.display(),
        opts.out_dir.display()
    );
    match rootfs::DebCache::open(dir) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            tracing::warn!("cache: not used ({e:#}); pass --cache-dir DIR or --no-cache");
            Ok(None)
        }
    }
}

/// The result of a build, for the CLI to print.
#[derive(Debug)]
pub struct Built {
    pub out_dir: PathBuf,
    pub manifest: Manifest,
}

/// Builds the image described by `cfg` into `opts.out_dir`.
pub fn build(cfg: &ImageConfig, opts: &BuildOptions) -> Result<Built> {
    let signer = crate::signing::build_signer(cfg)?;
    let secure_boot = cfg
        .secure_boot
        .as_ref()
        .map(|sb| -> Result<_> {
            let signer = crate::secureboot::load_signer(&sb.key, &sb.certificate)?;
            let keys =
                crate::secureboot::read_enrolled(&sb.pk, &sb.kek, &sb.db, sb.dbx.as_deref())?;
            Ok((signer, keys))
        })
        .transpose()
        .with_context(|| format!("{}: [secure-boot]", cfg.file.display()))?;
    let init = opts.init.load()?;
    let staging = Staging::new(&opts.out_dir)?;
    let work = staging.work_dir()?;
    let progress = Progress::new();
    let epoch = cfg.source_date_epoch;
    // Independent of the image: computed first so a bad firmware or name fails fast.
    let (snp, tdx) = progress.stage("launch digests", || {
        crate::launch::manifest_entries(&cfg.measurements)
    })?;

    let cache = open_cache(cfg, opts)?;
    let mut loaded = progress.stage("rootfs", || {
        rootfs::load(&cfg.rootfs, epoch, &work, cache.as_ref())
    })?;
    let tree = &loaded.tree;
    let kernel = progress.stage("kernel", || find_kernel(tree, cfg.kernel.path.as_deref()))?;
    // The root and its hash tree are written straight into disk.raw at their final offsets.
    let disk_path = staging.path("disk.raw");
    let disk_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&disk_path)
        .with_context(|| format!("creating {}", disk_path.display()))?;
    let root_off = disk::lay_out(&[cfg.disk.esp_size, 1], cfg.disk.alignment)?.0[1].offset;
    // The SBOM reads the tree (the dpkg database, or every file for its digest) on another core
    // while the erofs stage writes the root.
    let (summary, sbom) = std::thread::scope(|s| {
        let sbom = s.spawn(|| {
            crate::sbom::generate(
                tree,
                &crate::sbom::Image {
                    name: &cfg.name,
                    version: &cfg.version,
                    source_date_epoch: epoch,
                },
            )
        });
        let summary = progress.stage("erofs", || make_erofs(cfg, tree, &disk_file, root_off));
        let sbom = sbom
            .join()
            .map_err(|_| anyhow::anyhow!("the SBOM thread panicked"))
            .and_then(|r| r.context("the rootfs SBOM"));
        (summary, sbom)
    });
    let (summary, sbom) = (summary?, sbom?);
    let root = verity::Region {
        file: &disk_file,
        offset: root_off,
        len: summary.size,
    };
    // An uncompressed tar was hashed on another core during the erofs stage; wait for it here.
    let input_sha256 = loaded.input_sha256.take().map(|d| d.wait()).transpose()?;
    let (vinfo, vparams) = progress.stage("verity", || {
        let rootfs_digest = match input_sha256 {
            Some(d) => d,
            None => output::sha256_region(root)?,
        };
        make_verity(cfg, root, &rootfs_digest)
    })?;
    let (initrd_bytes, modules) = progress.stage("initrd", || {
        initrd::build(
            tree,
            &initrd::Spec {
                init: &init,
                kernel_release: &kernel.release,
                modules: &cfg.kernel.modules,
                root_mode: cfg.root.mode,
                mtime: epoch,
            },
        )
    })?;
    let cmdline = cmdline(&vinfo.root_hash, &cfg.kernel.cmdline);
    let (stub, stub_version) = progress.stage("stub", || load_stub(cfg, tree))?;
    let uki_bytes = progress.stage("uki", || {
        uki::build(
            &stub,
            &uki::Sections {
                osrel: os_release(cfg, tree)?,
                cmdline: cmdline.clone().into_bytes(),
                uname: kernel.release.clone().into_bytes(),
                linux: kernel.bytes.clone(),
                initrd: initrd_bytes.clone(),
                sbat_extra: cfg.uki.sbat.clone(),
            },
        )
    })?;
    // Secure Boot: the UKI the ESP holds (and uki.efi) is the signed one.
    let (uki_bytes, sb_state) = match &secure_boot {
        Some((signer, keys)) => (
            progress.stage("sign uki", || {
                crate::secureboot::sign_uki(&uki_bytes, signer)
            })?,
            measurements::pcr::SecureBoot {
                enabled: true,
                keys: keys.clone(),
            },
        ),
        None => (uki_bytes, measurements::pcr::SecureBoot::default()),
    };
    let esp_path = work.join("esp.img");
    progress.stage("esp", || {
        let vol = derive::volume_id(&cfg.name, &vinfo.root_hash);
        esp::build(
            &esp_path,
            cfg.disk.esp_size,
            &[("EFI/BOOT/BOOTX64.EFI", &uki_bytes)],
            vol,
            "ESP",
            epoch,
        )
    })?;
    let placed = progress.stage("disk", || {
        assemble_disk(cfg, &vinfo, &esp_path, summary.size, &disk_path)
    })?;
    // disk.raw is final: its SHA-256 (one ~0.2 s stream per 400 MB) runs on another core
    // while the UKI is written and the PCRs are predicted.
    let disk_hash = std::thread::spawn({
        let path = disk_path.clone();
        move || output::artifact(&path)
    });
    let uki_path = staging.path("uki.efi");
    std::fs::write(&uki_path, &uki_bytes)
        .with_context(|| format!("writing {}", uki_path.display()))?;
    let sbom_path = staging.path(crate::sbom::FILE);
    std::fs::write(&sbom_path, &sbom)
        .with_context(|| format!("writing {}", sbom_path.display()))?;
    let mut m = Manifest {
        schema: manifest::SCHEMA.into(),
        image: manifest::Image {
            name: cfg.name.clone(),
            version: cfg.version.clone(),
            source_date_epoch: epoch,
        },
        artifacts: [
            ("uki.efi".to_string(), output::artifact(&uki_path)?),
            (
                crate::sbom::FILE.to_string(),
                manifest::Artifact {
                    sha256: output::sha256_hex(&sbom),
                    size: sbom.len() as u64,
                },
            ),
        ]
        .into(),
        verity: manifest::Verity {
            root_hash: hex::encode(vinfo.root_hash),
            salt: hex::encode(&vparams.salt),
            uuid: uuid_text(&vparams.uuid),
            data_blocks: vinfo.data_blocks,
            data_block_size: vparams.data_block_size,
            hash_block_size: vparams.hash_block_size,
            hash_algorithm: "sha256".into(),
        },
        stub: manifest::Stub {
            version: stub_version,
            sha256: output::sha256_hex(&stub),
        },
        kernel: manifest::Kernel {
            release: kernel.release.clone(),
            path: format!("/{}", kernel.path),
            sha256: output::sha256_hex(&kernel.bytes),
            cmdline,
        },
        disk: placed,
        pcrs: None,
        pcr11_phases: None,
        events: None,
        secure_boot: None,
        snp,
        tdx,
        platforms: None,
        initrd: manifest::Initrd {
            sha256: output::sha256_hex(&initrd_bytes),
            modules: modules.load_order,
            root_mode: cfg.root.mode.as_str().into(),
        },
        inputs: manifest::Inputs {
            rootfs: manifest::RootfsInput {
                kind: match cfg.rootfs {
                    image_config::RootfsSource::Tar(_) => "tar".into(),
                    image_config::RootfsSource::Directory(_) => "directory".into(),
                    image_config::RootfsSource::Debian(_) => "debian".into(),
                    image_config::RootfsSource::Oci { .. } => "oci".into(),
                },
                sha256: input_sha256.map(hex::encode),
                packages: loaded.packages.clone(),
                entries: summary.inodes,
            },
            init: manifest::Digest {
                sha256: output::sha256_hex(&init),
            },
            nodeimg: Some(manifest::Tool {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        },
    };
    progress.stage("measure", || {
        let gpt = crate::disk::read_table(&disk_file)
            .context("reading back the GPT of disk.raw")?
            .measured;
        let edk2 = cfg.measurements.tdx.as_ref().map(|t| t.edk2.as_str());
        crate::measure::fill_manifest(
            &mut m,
            &uki_bytes,
            gpt,
            &cfg.measurements.banks,
            &sb_state,
            edk2,
        )
    })?;
    let recorded = crate::measure::read_recorded(&cfg.measurements.platform_values)?;
    m.platforms = m
        .pcrs
        .as_ref()
        .map(|p| measurements::platforms::reference_values(p, &recorded));
    let disk_artifact = disk_hash
        .join()
        .map_err(|_| anyhow::anyhow!("the disk.raw hashing thread panicked"))??;
    let raw_sha: [u8; 32] = hex::decode(&disk_artifact.sha256)
        .ok()
        .and_then(|v| v.try_into().ok())
        .context("the disk.raw digest")?;
    m.artifacts.insert("disk.raw".to_string(), disk_artifact);
    for name in &cfg.formats {
        let format = crate::formats::Format::from_name(name)
            .with_context(|| format!("{}: output.formats: `{name}`", cfg.file.display()))?;
        let (sha256, size) = progress.stage(format.name(), || {
            format.write(
                &staging.path("disk.raw"),
                Some(&raw_sha),
                epoch,
                &staging.path(format.file_name()),
            )
        })?;
        m.artifacts.insert(
            format.file_name().to_string(),
            manifest::Artifact { sha256, size },
        );
    }

    let manifest_sha = staging.write_json("manifest.json", &m)?;
    let bundle_sha = match &signer {
        Some(key) => Some(progress.stage("sign", || {
            let bundle = staging.path(crate::signing::BUNDLE_FILE);
            crate::signing::sign_file_to(&staging.path("manifest.json"), &bundle, key)
        })?),
        None => None,
    };
    let sha = |n: &str| m.artifacts[n].sha256.as_str();
    let mut files = vec![
        ("disk.raw", sha("disk.raw")),
        ("uki.efi", sha("uki.efi")),
        ("manifest.json", &manifest_sha),
        (crate::sbom::FILE, sha(crate::sbom::FILE)),
    ];
    for f in crate::formats::ALL {
        if m.artifacts.contains_key(f.file_name()) {
            files.push((f.file_name(), sha(f.file_name())));
        }
    }
    if let Some(b) = &bundle_sha {
        files.push((crate::signing::BUNDLE_FILE, b));
    }
    staging.commit(&files)?;
    progress.finish();
    Ok(Built {
        out_dir: opts.out_dir.clone(),
        manifest: m,
    })
}

/// The kernel chosen from the rootfs.
#[derive(Debug)]
struct KernelImage {
    path: String,
    release: String,
    bytes: Vec<u8>,
}

/// `kernel.path`, or the single `/boot/vmlinuz-*` or `/usr/lib/modules/*/vmlinuz`.
fn find_kernel(tree: &Tree, configured: Option<&str>) -> Result<KernelImage> {
    let path = match configured {
        Some(p) => tree
            .resolve(p.trim_start_matches('/'))
            .with_context(|| format!("kernel.path {p} is not in the rootfs"))?,
        None => {
            let found: Vec<&str> = tree
                .entries
                .iter()
                .map(|e| e.path.as_str())
                .filter(|p| {
                    p.strip_prefix("boot/vmlinuz-")
                        .is_some_and(|r| !r.contains('/'))
                        || (p.starts_with("usr/lib/modules/")
                            && p.ends_with("/vmlinuz")
                            && p.matches('/').count() == 4)
                })
                .collect();
            match found.as_slice() {
                [one] => tree.resolve(one).with_context(|| format!("/{one} is a dangling symlink"))?,
                [] => anyhow::bail!("no kernel in the rootfs: no /boot/vmlinuz-* or /usr/lib/modules/*/vmlinuz (install a kernel or set kernel.path)"),
                many => anyhow::bail!("several kernels in the rootfs ({}); set kernel.path", many.join(", ")),
            }
        }
    };
    let release = path
        .strip_prefix("boot/vmlinuz-")
        .or_else(|| {
            path.strip_prefix("usr/lib/modules/")
                .and_then(|r| r.strip_suffix("/vmlinuz"))
        })
        .with_context(|| {
            format!(
                "cannot tell the kernel release from /{path} (expected /boot/vmlinuz-<release>)"
            )
        })?
        .to_string();
    let bytes = tree.read_file(&path)?;
    Ok(KernelImage {
        path,
        release,
        bytes,
    })
}

/// Writes the erofs root into `disk` at byte `offset`.
fn make_erofs(cfg: &ImageConfig, tree: &Tree, disk: &File, offset: u64) -> Result<erofs::Summary> {
    let mut f = disk;
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let opts = erofs::Options {
        uuid: derive::erofs_uuid(&cfg.name, &cfg.version),
        build_time: cfg.source_date_epoch,
        volume_name: "root".into(),
    };
    let s = erofs::write(tree, &mut w, &opts).context("writing the erofs root")?;
    w.flush()?;
    Ok(s)
}

/// Hashes `root` and writes the hash device right after it (at the next aligned offset, where
/// the disk layout puts the verity partition).
fn make_verity(
    cfg: &ImageConfig,
    root: verity::Region<'_>,
    rootfs_digest: &[u8; 32],
) -> Result<(verity::Info, verity::Params)> {
    let salt = cfg
        .verity
        .salt
        .clone()
        .unwrap_or_else(|| derive::salt(&cfg.name, rootfs_digest).to_vec());
    let params = verity::Params {
        data_block_size: cfg.verity.data_block_size,
        hash_block_size: cfg.verity.hash_block_size,
        uuid: derive::verity_uuid(&salt),
        salt,
    };
    let hash_off =
        disk::lay_out(&[cfg.disk.esp_size, root.len, 1], cfg.disk.alignment)?.0[2].offset;
    let mut f = root.file;
    f.seek(std::io::SeekFrom::Start(hash_off))?;
    let mut out = BufWriter::new(f);
    let info = verity::format(root, &mut out, &params)?;
    out.flush()?;
    Ok((info, params))
}

/// `roothash=<hex>` followed by the configured arguments.
fn cmdline(root_hash: &[u8], extra: &[String]) -> String {
    std::iter::once(format!("roothash={}", hex::encode(root_hash)))
        .chain(extra.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// systemd-stub major versions whose layout and measurements nodeimg knows.
/// (Those whose layout and PCR model were verified byte for byte and by attested boots.)
pub const KNOWN_STUBS: [u32; 3] = [252, 254, 257];

/// The configured stub (or the rootfs's, or the host's), refused unless its `.sdmagic` names
/// a known version; returns the stub and that version (the UKI keeps the stub's `.sdmagic`).
fn load_stub(cfg: &ImageConfig, tree: &Tree) -> Result<(Vec<u8>, String)> {
    let stub = read_stub(cfg, tree)?;
    let pe = measurements::pe::Pe::parse(&stub).context("the systemd-stub is not a PE image")?;
    let v = pe.stub_version().context("reading the stub's .sdmagic")?.context(
        "the stub has no .sdmagic section, so its version is unknown (use Debian's systemd-boot-efi stub)",
    )?;
    check_stub_sections(&pe)?;
    anyhow::ensure!(
        KNOWN_STUBS.contains(&v.major),
        "systemd-stub {} is not a version nodeimg knows ({KNOWN_STUBS:?}); its measurements cannot be predicted",
        v.version
    );
    Ok((stub, v.version))
}

/// The stub's own sections must not overlap in memory (the UKI's sections are laid out after
/// the last one; overlapping input sections would be loaded over each other).
fn check_stub_sections(pe: &measurements::pe::Pe<'_>) -> Result<()> {
    let mut by_va: Vec<&measurements::pe::Section> = pe.sections.iter().collect();
    by_va.sort_by_key(|s| s.virtual_address);
    for w in by_va.windows(2) {
        let end = u64::from(w[0].virtual_address) + u64::from(w[0].virtual_size);
        anyhow::ensure!(
            end <= u64::from(w[1].virtual_address),
            "the systemd-stub's sections {} and {} overlap in memory (VA {:#x}+{:#x} reaches past {:#x}); not a usable stub",
            w[0].name_lossy(),
            w[1].name_lossy(),
            w[0].virtual_address,
            w[0].virtual_size,
            w[1].virtual_address
        );
    }
    Ok(())
}

fn read_stub(cfg: &ImageConfig, tree: &Tree) -> Result<Vec<u8>> {
    match &cfg.uki.stub {
        StubSource::Host(p) => {
            std::fs::read(p).with_context(|| format!("reading uki.stub {}", p.display()))
        }
        StubSource::Auto => {
            if let Some(p) = tree.resolve(STUB_PATH) {
                return tree.read_file(&p);
            }
            let host = Path::new("/").join(STUB_PATH);
            std::fs::read(&host).with_context(|| {
                format!("no systemd-stub: neither /{STUB_PATH} in the rootfs nor {} on the host (install systemd-boot-efi or set uki.stub)", host.display())
            })
        }
    }
}

fn os_release(cfg: &ImageConfig, tree: &Tree) -> Result<Vec<u8>> {
    if let Some(p) = &cfg.uki.os_release {
        return std::fs::read(p).with_context(|| format!("reading uki.os-release {}", p.display()));
    }
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| tree.resolve(p))
        .map(|p| tree.read_file(&p))
        .context("no /etc/os-release or /usr/lib/os-release in the rootfs (add one or set uki.os-release)")?
}

/// Lays out ESP (copied), root and root-verity (already in place) and writes the GPT.
fn assemble_disk(
    cfg: &ImageConfig,
    v: &verity::Info,
    esp: &Path,
    root_len: u64,
    out: &Path,
) -> Result<manifest::Disk> {
    let rh = &v.root_hash;
    let guid = derive::disk_guid(rh);
    let part = |type_guid, unique_guid, name: &str, source, attrs| disk::PartSpec {
        type_guid,
        unique_guid,
        name: name.into(),
        source,
        attrs,
    };
    let parts = [
        part(
            disk::TYPE_ESP,
            derive::esp_uuid(rh),
            "esp",
            disk::Source::File(esp.to_path_buf()),
            0,
        ),
        part(
            disk::TYPE_ROOT_X86_64,
            rh[..16].try_into()?,
            "root-x86-64",
            disk::Source::InPlace(root_len),
            disk::ATTR_READ_ONLY,
        ),
        part(
            disk::TYPE_ROOT_VERITY_X86_64,
            rh[16..].try_into()?,
            "root-x86-64-verity",
            disk::Source::InPlace(v.hash_size),
            disk::ATTR_READ_ONLY,
        ),
    ];
    let placed = disk::assemble(out, &parts, guid, cfg.disk.alignment)?;
    let partitions = parts
        .iter()
        .zip(&placed)
        .map(|(s, p)| manifest::Partition {
            name: s.name.clone(),
            type_guid: uuid_text(&s.type_guid),
            uuid: uuid_text(&s.unique_guid),
            offset: p.offset,
            size: p.size,
        })
        .collect();
    Ok(manifest::Disk {
        guid: uuid_text(&guid),
        partitions,
    })
}
