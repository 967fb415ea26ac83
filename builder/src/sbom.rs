//! The software bill of materials of the root filesystem: CycloneDX 1.5 JSON (`sbom.cdx.json`).
//!
//! Why CycloneDX and not SPDX 2.3: Debian records licenses as the short names of its machine-
//! readable copyright files (DEP-5: `GPL-2+`, `BSD-3-clause`, `public-domain`), which are not SPDX
//! expressions. SPDX 2.3 would force every one of them into `NOASSERTION` or an invented
//! `LicenseRef-`; CycloneDX carries them as they are (`license.name`). Both carry package URLs,
//! hashes and tool metadata, and both have reference validators (CycloneDX's JSON schemas, run by
//! the test through `cyclonedx-python-lib`).
//!
//! What is listed:
//! - a tree with a dpkg database (`/var/lib/dpkg/status`): every package whose status is
//!   `installed` — name, version, architecture, source package and version, maintainer, the
//!   licenses of its DEP-5 `/usr/share/doc/<name>/copyright` (none when that file is absent or
//!   not DEP-5: never guessed), as a `pkg:deb` package URL with the distribution from
//!   `/etc/os-release`;
//! - any other tree (tar, directory or OCI input without dpkg): every regular file with its
//!   SHA-256.
//!
//! The document is deterministic: components are sorted, the timestamp is SOURCE_DATE_EPOCH and
//! the serial number is a name-based (v5) UUID of the document's own content.
//!
//! Sizes are bounded whatever the tree claims: the dpkg status database is read up to 64 MiB and
//! each copyright file up to 1 MiB (beyond that its licenses are left out, with a warning).

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::rootfs::{Kind, Tree};

/// The file name of the SBOM next to disk.raw.
pub const FILE: &str = "sbom.cdx.json";

/// Larger dpkg status databases are refused (a full Debian desktop's is ~5 MiB).
pub const STATUS_MAX: u64 = 64 << 20;
/// Copyright files are read up to this size for their `License:` fields.
const COPYRIGHT_MAX: u64 = 1 << 20;

const STATUS: &str = "var/lib/dpkg/status";

/// What the SBOM describes as a whole (CycloneDX `metadata.component`).
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub source_date_epoch: u64,
}

/// One installed Debian package, as the dpkg database records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package and its version (the binary's version unless `Source:` says otherwise).
    pub source: String,
    pub source_version: String,
    pub maintainer: Option<String>,
}

/// The CycloneDX 1.5 document of `tree` (pretty-printed JSON, trailing newline).
pub fn generate(tree: &Tree, image: &Image<'_>) -> Result<Vec<u8>> {
    let components = match tree.resolve(STATUS) {
        Some(path) => {
            let text = tree
                .read_file_capped(&path, STATUS_MAX)?
                .with_context(|| format!("/{STATUS}: larger than {} MiB", STATUS_MAX >> 20))?;
            let text = String::from_utf8(text)
                .with_context(|| format!("/{STATUS} in the rootfs is not UTF-8"))?;
            let packages = parse_status(&text).with_context(|| format!("/{STATUS}"))?;
            let distro = Distro::of(tree);
            packages
                .iter()
                .map(|p| package_component(tree, p, &distro))
                .collect::<Result<Vec<_>>>()?
        }
        None => file_components(tree)?,
    };
    let mut bom = Bom {
        bom_format: "CycloneDX",
        spec_version: "1.5",
        serial_number: String::new(),
        version: 1,
        metadata: Metadata {
            timestamp: rfc3339(image.source_date_epoch),
            tools: Tools {
                components: vec![Tool {
                    kind: "application",
                    name: "nodeimg",
                    version: env!("CARGO_PKG_VERSION"),
                }],
            },
            component: Root {
                kind: "operating-system",
                bom_ref: "image",
                name: image.name.to_string(),
                version: image.version.to_string(),
            },
        },
        components,
    };
    // The serial number names the content: a v5 UUID of the document without it.
    let body = serde_json::to_vec(&bom)?;
    bom.serial_number = format!("urn:uuid:{}", uuid_v5(&Sha256::digest(&body)));
    let mut out = serde_json::to_vec_pretty(&bom)?;
    out.push(b'\n');
    Ok(out)
}

/// Installed packages of a dpkg status database, sorted by name and architecture. Stanzas are
/// separated by blank lines; continuation lines (starting with a space or tab) belong to the
/// field above. Packages in any other state (`config-files`, `half-installed`, …) are skipped,
/// as `dpkg-query -W -f '${db:Status-Abbrev}'` shows them with a state other than `ii`.
pub fn parse_status(text: &str) -> Result<Vec<Package>> {
    let mut out = BTreeSet::new();
    for (index, stanza) in text.split("\n\n").enumerate() {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (!l.starts_with([' ', '\t']) && k.eq_ignore_ascii_case(name)).then(|| v.trim())
            })
        };
        let Some(name) = field("Package") else {
            if stanza.trim().is_empty() {
                continue;
            }
            anyhow::bail!("stanza {} has no Package field", index + 1);
        };
        let installed = field("Status").is_some_and(|s| s.ends_with(" installed"));
        if !installed {
            continue;
        }
        let version = field("Version")
            .with_context(|| format!("installed package `{name}` has no Version field"))?;
        let architecture = field("Architecture")
            .with_context(|| format!("installed package `{name}` has no Architecture field"))?;
        // `Source: name` or `Source: name (version)`.
        let (source, source_version) = match field("Source") {
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (n.trim(), v.trim_end_matches(')').trim()),
                None => (s, version),
            },
            None => (name, version),
        };
        out.insert(Package {
            name: name.to_string(),
            version: version.to_string(),
            architecture: architecture.to_string(),
            source: source.to_string(),
            source_version: source_version.to_string(),
            maintainer: field("Maintainer").map(str::to_string),
        });
    }
    let mut v: Vec<Package> = out.into_iter().collect();
    v.sort_by(|a, b| (&a.name, &a.architecture).cmp(&(&b.name, &b.architecture)));
    Ok(v)
}

/// The license short names of a DEP-5 copyright file, in first-seen order; empty when the file
/// is not in the machine-readable format.
pub fn dep5_licenses(text: &str) -> Vec<String> {
    let dep5 = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Format:"))
        .is_some_and(|f| f.contains("copyright-format") || f.contains("dep5"));
    if !dep5 {
        return Vec::new();
    }
    let mut seen = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if line.starts_with([' ', '\t']) || !k.eq_ignore_ascii_case("License") {
            continue;
        }
        let name = v.trim();
        if !name.is_empty() && !seen.iter().any(|s| s == name) {
            seen.push(name.to_string());
        }
    }
    seen
}

/// The distribution a `pkg:deb` URL names: `/etc/os-release`'s ID (namespace) and codename, else
/// `ID-VERSION_ID` (qualifier `distro`).
#[derive(Debug)]
struct Distro {
    namespace: String,
    qualifier: Option<String>,
}

impl Distro {
    fn of(tree: &Tree) -> Distro {
        let text = ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|p| tree.resolve(p))
            .and_then(|p| tree.read_file_capped(&p, 64 << 10).ok().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let get = |key: &str| {
            text.lines().find_map(|l| {
                let v = l.strip_prefix(key)?.strip_prefix('=')?;
                let v = v.trim().trim_matches(['"', '\'']);
                (!v.is_empty()).then(|| v.to_string())
            })
        };
        let id = get("ID").filter(|id| {
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
        let qualifier = get("VERSION_CODENAME")
            .or_else(|| Some(format!("{}-{}", id.as_deref()?, get("VERSION_ID")?)));
        Distro {
            namespace: id.unwrap_or_else(|| "debian".into()),
            qualifier,
        }
    }
}

fn package_component(tree: &Tree, p: &Package, distro: &Distro) -> Result<Component> {
    let mut purl = format!(
        "pkg:deb/{}/{}@{}?arch={}",
        distro.namespace,
        purl_escape(&p.name),
        purl_escape(&p.version),
        purl_escape(&p.architecture)
    );
    if let Some(d) = &distro.qualifier {
        purl.push_str(&format!("&distro={}", purl_escape(d)));
    }
    if p.source != p.name || p.source_version != p.version {
        let upstream = if p.source_version == p.version {
            p.source.clone()
        } else {
            format!("{}@{}", p.source, p.source_version)
        };
        purl.push_str(&format!("&upstream={}", purl_escape(&upstream)));
    }
    let licenses = copyright_licenses(tree, &p.name)?
        .into_iter()
        .map(|name| License {
            license: LicenseName { name },
        })
        .collect();
    Ok(Component {
        kind: "library",
        bom_ref: purl.clone(),
        name: p.name.clone(),
        version: Some(p.version.clone()),
        publisher: p.maintainer.clone(),
        purl: Some(purl),
        hashes: Vec::new(),
        licenses,
        properties: vec![
            Property::new("nodeimg:deb:architecture", &p.architecture),
            Property::new("nodeimg:deb:source", &p.source),
            Property::new("nodeimg:deb:source-version", &p.source_version),
        ],
    })
}

/// Licenses from `/usr/share/doc/<package>/copyright` (following symlinks inside the tree).
fn copyright_licenses(tree: &Tree, package: &str) -> Result<Vec<String>> {
    let Some(path) = tree.resolve(&format!("usr/share/doc/{package}/copyright")) else {
        return Ok(Vec::new());
    };
    if !matches!(
        tree.get(&path).map(|e| &e.kind),
        Some(Kind::File { .. } | Kind::Hardlink { .. })
    ) {
        return Ok(Vec::new());
    }
    match tree.read_file_capped(&path, COPYRIGHT_MAX)? {
        Some(bytes) => Ok(dep5_licenses(&String::from_utf8_lossy(&bytes))),
        None => {
            tracing::warn!(
                file = %format!("/{path}"),
                "copyright file over {} KiB: its licenses are left out of the SBOM",
                COPYRIGHT_MAX >> 10
            );
            Ok(Vec::new())
        }
    }
}

/// Every regular file (and further hardlink name) with its SHA-256, in tree order.
fn file_components(tree: &Tree) -> Result<Vec<Component>> {
    let mut out = Vec::new();
    let mut by_path = std::collections::HashMap::new();
    for e in &tree.entries {
        let sha = match &e.kind {
            Kind::File { data, .. } => {
                let mut h = Sha256::new();
                let mut r = tree
                    .store
                    .open(*data)
                    .with_context(|| format!("reading `/{}` from the rootfs", e.path))?;
                std::io::copy(&mut r, &mut h)
                    .with_context(|| format!("reading `/{}` from the rootfs", e.path))?;
                let sha = hex::encode(h.finalize());
                by_path.insert(e.path.as_str(), sha.clone());
                sha
            }
            Kind::Hardlink { target } => by_path
                .get(target.as_str())
                .cloned()
                .with_context(|| format!("`/{}`: hardlink to unknown `/{target}`", e.path))?,
            _ => continue,
        };
        let name = format!("/{}", e.path);
        out.push(Component {
            kind: "file",
            bom_ref: name.clone(),
            name,
            version: None,
            publisher: None,
            purl: None,
            hashes: vec![Hash {
                alg: "SHA-256",
                content: sha,
            }],
            licenses: Vec::new(),
            properties: Vec::new(),
        });
    }
    Ok(out)
}

/// Percent-encodes everything but the purl spec's unreserved characters (`:` included, so an
/// epoch `1:2.3` becomes `1%3A2.3`).
fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rfc3339(epoch: u64) -> String {
    let t = measurements::secureboot::EfiTime::from_unix(epoch);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// RFC 9562 name-based UUID (version 5, SHA-1) of `name` in nodeimg's SBOM namespace.
fn uuid_v5(name: &[u8]) -> String {
    use sha1::Digest as _;
    // The RFC's URL namespace; the name is a nodeimg-specific prefix plus the document digest.
    const NS_URL: [u8; 16] = [
        0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];
    let mut h = sha1::Sha1::new();
    h.update(NS_URL);
    h.update(b"nodeimg:sbom:");
    h.update(name);
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    crate::disk::guid_to_string(&u)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    bom_format: &'static str,
    spec_version: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    serial_number: String,
    version: u32,
    metadata: Metadata,
    components: Vec<Component>,
}

#[derive(Serialize)]
struct Metadata {
    timestamp: String,
    tools: Tools,
    component: Root,
}

#[derive(Serialize)]
struct Tools {
    components: Vec<Tool>,
}

#[derive(Serialize)]
struct Tool {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Root {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: &'static str,
    name: String,
    version: String,
}

#[derive(Serialize)]
struct Component {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publisher: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    purl: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<License>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    properties: Vec<Property>,
}

#[derive(Serialize)]
struct Hash {
    alg: &'static str,
    content: String,
}

#[derive(Serialize)]
struct License {
    license: LicenseName,
}

#[derive(Serialize)]
struct LicenseName {
    name: String,
}

#[derive(Serialize)]
struct Property {
    name: &'static str,
    value: String,
}

impl Property {
    fn new(name: &'static str, value: &str) -> Property {
        Property {
            name,
            value: value.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_installed_packages_with_their_source() {
        let text = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9+deb12u4\nMaintainer: GNU Libc Maintainers <x@example.org>\nDescription: GNU C Library\n Package: fake continuation\n\n\
Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\n\
Package: libgcc-s1\nStatus: install ok installed\nArchitecture: amd64\nSource: gcc-12 (12.2.0-14)\nVersion: 12.2.0-14+deb12u1\n\n\
Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9+deb12u4\nSource: glibc\n\n\
Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:12.4+deb12u5\n";
        let p = parse_status(text).unwrap();
        let names: Vec<_> = p
            .iter()
            .map(|p| format!("{}:{} {}", p.name, p.architecture, p.version))
            .collect();
        assert_eq!(
            names,
            [
                "base-files:amd64 1:12.4+deb12u5",
                "libc6:amd64 2.36-9+deb12u4",
                "libc6:i386 2.36-9+deb12u4",
                "libgcc-s1:amd64 12.2.0-14+deb12u1"
            ]
        );
        assert_eq!(
            (p[1].source.as_str(), p[1].source_version.as_str()),
            ("glibc", "2.36-9+deb12u4")
        );
        assert_eq!(
            (p[3].source.as_str(), p[3].source_version.as_str()),
            ("gcc-12", "12.2.0-14")
        );
        assert_eq!(p[0].source, "base-files");
        assert!(parse_status("Status: install ok installed\nVersion: 1\n")
            .unwrap_err()
            .to_string()
            .contains("stanza 1 has no Package"));
        assert!(parse_status("Package: x\nStatus: install ok installed\n")
            .unwrap_err()
            .to_string()
            .contains("`x` has no Version"));
    }

    #[test]
    fn dep5_licenses_only_from_machine_readable_files() {
        let dep5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: x\nLicense: GPL-2+\n This program is free\n License: not a field\n\nFiles: lib/*\nLicense: LGPL-2.1+\n\nLicense: GPL-2+\n text\n";
        assert_eq!(dep5_licenses(dep5), ["GPL-2+", "LGPL-2.1+"]);
        assert!(dep5_licenses("This is the Debian package of foo.\nLicense: GPL\n").is_empty());
    }

    #[test]
    fn purl_escaping_and_uuid_shape() {
        assert_eq!(purl_escape("1:2.3+dfsg-1~bpo"), "1%3A2.3%2Bdfsg-1~bpo");
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "nodeimg:sbom:x")
        assert_eq!(uuid_v5(b"x"), "7135de45-038a-5c99-89fe-803304e12b34");
        assert_ne!(uuid_v5(b"x"), uuid_v5(b"y"));
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
