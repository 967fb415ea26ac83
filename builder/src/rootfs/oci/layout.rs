//! The OCI image layout's JSON documents (`oci-layout`, `index.json`, image index, image
//! manifest, image config), digests, and reading small blobs with their size and digest checked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The annotation that names a manifest in `index.json` (the `:tag` of `oci = "dir:tag"`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Largest JSON blob (index, manifest, config) we read; the image spec suggests 4 MiB.
const MAX_JSON: u64 = 4 << 20;
/// Nested image indexes followed at most this deep.
const MAX_DEPTH: usize = 4;

const MT_INDEX: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MT_MANIFEST: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const MT_CONFIG: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A `sha256:<64 lower-case hex>` digest (the only algorithm we accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parses `sha256:<hex>`; the strict form keeps blob paths inside `blobs/sha256/`.
    pub fn parse(s: &str) -> Result<Self> {
        let Some((alg, hex_part)) = s.split_once(':') else {
            bail!("digest `{s}` has no `algorithm:` prefix");
        };
        ensure!(
            alg == "sha256",
            "digest `{s}` uses {alg}; only sha256 is supported"
        );
        ensure!(
            hex_part.len() == 64
                && hex_part
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "digest `{s}` is not 64 lower-case hex digits"
        );
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).context("decoding digest hex")?;
        Ok(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// Where a descriptor points to (`mediaType`, `digest`, `size`) plus what selects it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    manifests: Vec<Descriptor>,
}

/// An image manifest: the config blob and the layers, bottom first.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    schema_version: u32,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The part of the image config we check: platform and the uncompressed layer digests.
#[derive(Debug, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub architecture: String,
    pub rootfs: ConfigRootfs,
}

#[derive(Debug, Deserialize)]
pub struct ConfigRootfs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// An image layout directory.
#[derive(Debug)]
pub struct Layout {
    pub dir: PathBuf,
}

/// The selected image: its manifest (with the manifest blob's digest) and config.
#[derive(Debug)]
pub struct Image {
    pub manifest_digest: Sha256Digest,
    pub manifest: Manifest,
    pub config: Config,
}

impl Layout {
    /// Checks `oci-layout` and returns the layout.
    pub fn open(dir: &Path) -> Result<Self> {
        let p = dir.join("oci-layout");
        let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let l: LayoutFile = serde_json::from_slice(&text)
            .with_context(|| format!("parsing {} as JSON", p.display()))?;
        ensure!(
            l.image_layout_version.split('.').next() == Some("1"),
            "{}: imageLayoutVersion {} (only 1.x is supported)",
            p.display(),
            l.image_layout_version
        );
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// Path of the blob a descriptor names (the digest is validated first).
    pub fn blob_path(&self, d: &Descriptor) -> Result<(PathBuf, Sha256Digest)> {
        let digest = Sha256Digest::parse(&d.digest)?;
        let path = self.dir.join("blobs/sha256").join(hex::encode(digest.0));
        Ok((path, digest))
    }

    /// Selects the image by tag (or the only one), follows nested indexes to linux/amd64,
    /// and reads its manifest and config.
    pub fn image(&self, tag: Option<&str>) -> Result<Image> {
        let p = self.dir.join("index.json");
        let bytes = crate::infile::read_capped(&p, MAX_JSON, "OCI document")?;
        let index: Index = parse_json(&bytes, "index.json")?;
        ensure!(
            index.schema_version == 2,
            "index.json: schemaVersion {} (expected 2)",
            index.schema_version
        );
        let mut desc = select_tagged(&index.manifests, tag)?.clone();
        for _ in 0..MAX_DEPTH {
            if MT_MANIFEST.contains(&desc.media_type.as_str()) {
                return self.load_image(&desc);
            }
            ensure!(
                MT_INDEX.contains(&desc.media_type.as_str()),
                "manifest {} has media type {}, which is neither an image manifest nor an image index",
                desc.digest,
                desc.media_type
            );
            let nested: Index = parse_json(&self.small_blob(&desc)?, &desc.digest)?;
            let refs: Vec<&Descriptor> = nested.manifests.iter().collect();
            desc = select_platform(&refs)
                .with_context(|| format!("in image index {}", desc.digest))?
                .clone();
        }
        bail!("image indexes nested more than {MAX_DEPTH} deep")
    }

    fn load_image(&self, desc: &Descriptor) -> Result<Image> {
        let bytes = self.small_blob(desc)?;
        let manifest: Manifest = parse_json(&bytes, &desc.digest)?;
        ensure!(
            manifest.schema_version == 2,
            "image manifest {}: schemaVersion {} (expected 2)",
            desc.digest,
            manifest.schema_version
        );
        let c = &manifest.config;
        ensure!(
            MT_CONFIG.contains(&c.media_type.as_str()),
            "image manifest {}: config media type {} is not a container image config \
             (an artifact, not an image?)",
            desc.digest,
            c.media_type
        );
        let config: Config = parse_json(&self.small_blob(c)?, &c.digest)?;
        ensure!(
            config.architecture.is_empty() || config.architecture == "amd64",
            "the image is for {}; nodeimg builds x86-64 (amd64) images",
            config.architecture
        );
        ensure!(
            config.rootfs.kind == "layers" && config.rootfs.diff_ids.len() == manifest.layers.len(),
            "image config {}: rootfs.type {:?} with {} diff_ids for {} layers",
            c.digest,
            config.rootfs.kind,
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        );
        Ok(Image {
            manifest_digest: Sha256Digest::parse(&desc.digest)?,
            manifest,
            config,
        })
    }

    /// Reads a JSON-sized blob and checks its size and digest.
    pub fn small_blob(&self, d: &Descriptor) -> Result<Vec<u8>> {
        let (path, digest) = self.blob_path(d)?;
        ensure!(
            d.size <= MAX_JSON,
            "blob {} is {} bytes; JSON documents over {MAX_JSON} bytes are refused",
            d.digest,
            d.size
        );
        let bytes = crate::infile::read_capped(&path, MAX_JSON, "OCI document")?;
        check_blob(
            &d.digest,
            d.size,
            bytes.len() as u64,
            Sha256::digest(&bytes).into(),
            digest,
        )?;
        Ok(bytes)
    }
}

/// Fails unless a blob has the descriptor's size and digest; names the blob.
pub fn check_blob(
    name: &str,
    want_size: u64,
    size: u64,
    got: [u8; 32],
    want: Sha256Digest,
) -> Result<()> {
    ensure!(
        size == want_size,
        "blob {name} is {size} bytes, its descriptor says {want_size}"
    );
    ensure!(
        got == want.0,
        "blob {name}: digest mismatch (the file's content hashes to sha256:{}); \
         the layout is corrupt or was tampered with",
        hex::encode(got)
    );
    Ok(())
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).with_context(|| format!("parsing {what} as an OCI document"))
}

fn tags(ds: &[Descriptor]) -> String {
    let t: Vec<&str> = ds
        .iter()
        .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
        .collect();
    if t.is_empty() {
        "none".into()
    } else {
        t.join(", ")
    }
}

/// The descriptor whose ref name is `tag`, or the only one without a tag.
fn select_tagged<'a>(ds: &'a [Descriptor], tag: Option<&str>) -> Result<&'a Descriptor> {
    let Some(tag) = tag else {
        return match ds {
            [one] => Ok(one),
            [] => bail!("index.json lists no manifests"),
            _ => bail!(
                "index.json lists {} manifests; select one with `oci = \"DIR:TAG\"` (tags: {})",
                ds.len(),
                tags(ds)
            ),
        };
    };
    let hits: Vec<&Descriptor> = ds
        .iter()
        .filter(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
        .collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "index.json has no manifest tagged `{tag}` (tags: {})",
            tags(ds)
        ),
        many => select_platform(many)
            .with_context(|| format!("{} manifests are tagged `{tag}`", many.len())),
    }
}

/// The linux/amd64 entry of an index (or its only entry).
fn select_platform<'a>(ds: &[&'a Descriptor]) -> Result<&'a Descriptor> {
    let amd64: Vec<&'a Descriptor> = ds
        .iter()
        .copied()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .collect();
    match (amd64.as_slice(), ds) {
        ([one], _) => Ok(one),
        ([], [only]) if only.platform.is_none() => Ok(only),
        ([], _) => bail!("no linux/amd64 image among {} manifests", ds.len()),
        (many, _) => bail!("{} linux/amd64 manifests; cannot choose", many.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parsing_table() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(Sha256Digest::parse(&good).unwrap().0, [0xab; 32]);
        for bad in [
            "ab".repeat(32),
            format!("sha512:{}", "ab".repeat(64)),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:../../{}", "a".repeat(58)),
        ] {
            assert!(Sha256Digest::parse(&bad).is_err(), "{bad}");
        }
    }

    fn desc(tag: Option<&str>, plat: Option<(&str, &str)>, n: u8) -> Descriptor {
        Descriptor {
            media_type: MT_MANIFEST[0].into(),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            size: 1,
            annotations: tag
                .map(|t| [(REF_NAME.to_string(), t.to_string())].into())
                .unwrap_or_default(),
            platform: plat.map(|(os, a)| Platform {
                os: os.into(),
                architecture: a.into(),
            }),
        }
    }

    #[test]
    fn selection_table() {
        let ds = [
            desc(Some("v1"), None, 1),
            desc(Some("v2"), Some(("linux", "arm64")), 2),
            desc(Some("v2"), Some(("linux", "amd64")), 3),
        ];
        assert_eq!(select_tagged(&ds, Some("v1")).unwrap().digest, ds[0].digest);
        assert_eq!(select_tagged(&ds, Some("v2")).unwrap().digest, ds[2].digest);
        let e = select_tagged(&ds, Some("v3")).unwrap_err().to_string();
        assert!(e.contains("v3") && e.contains("v1, v2"), "{e}");
        let e = select_tagged(&ds, None).unwrap_err().to_string();
        assert!(e.contains("3 manifests"), "{e}");
        assert_eq!(select_tagged(&ds[..1], None).unwrap().digest, ds[0].digest);
        assert!(select_platform(&[&ds[1]]).is_err(), "arm64 only");
    }
}
