//! `nodeimg verify --snp-id-block B --snp-id-auth A [--snp-id-key PUB] [--snp-author-key PUB]`:
//! reads the files and runs `measurements::attest::verify_id_block`; without a pair, the signed
//! manifest's own ID blocks are checked (one summary line, `snp-id-blocks`).

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use measurements::attest::{verify_id_block, Check, IdBlockEvidence, Status};
use measurements::cvm::idblock::{ID_AUTH_LEN, ID_BLOCK_LEN};
use measurements::manifest::SnpEntry;
use serde_json::Value;

use super::verify::SnpIdFiles;

/// Appends the ID block checks `f` asks for (none when there is nothing to check).
pub fn checks(out: &mut Vec<Check>, f: &SnpIdFiles, manifest: &Value) -> Result<()> {
    let entries: Vec<SnpEntry> = match manifest.get("snp") {
        Some(v) => serde_json::from_value(v.clone())
            .context("the signed manifest's snp entries are malformed")?,
        None => Vec::new(),
    };
    let id_key = f
        .id_key
        .as_deref()
        .map(|p| pin(p, "--snp-id-key"))
        .transpose()?;
    let author_key = f
        .author_key
        .as_deref()
        .map(|p| pin(p, "--snp-author-key"))
        .transpose()?;
    if let Some((block, auth)) = &f.pair {
        let block = read(block, "--snp-id-block", ID_BLOCK_LEN)?;
        let auth = read(auth, "--snp-id-auth", ID_AUTH_LEN)?;
        out.extend(verify_id_block(
            &IdBlockEvidence {
                block: &block,
                auth: &auth,
                id_key_spki: id_key.as_deref(),
                author_key_spki: author_key.as_deref(),
            },
            &entries,
        ));
        return Ok(());
    }
    manifest_blocks(out, &entries, id_key.as_deref(), author_key.as_deref());
    Ok(())
}

/// The manifest's own ID blocks: one summary line, or the first failure.
fn manifest_blocks(
    out: &mut Vec<Check>,
    entries: &[SnpEntry],
    id_key: Option<&[u8]>,
    author_key: Option<&[u8]>,
) {
    let with_blocks: Vec<&SnpEntry> = entries.iter().filter(|e| e.id_block.is_some()).collect();
    if with_blocks.is_empty() {
        if id_key.is_some() || author_key.is_some() {
            out.push(Check {
                check: "snp-id-blocks",
                status: Status::Failed,
                detail: "an ID key is pinned but the manifest has no ID blocks and no \
                         --snp-id-block/--snp-id-auth pair was given"
                    .into(),
            });
        }
        return;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    for e in &with_blocks {
        let Some(id) = &e.id_block else { continue };
        let decode = |s: &str| b64.decode(s).unwrap_or_default();
        let (block, auth) = (decode(&id.block), decode(&id.auth));
        let lines = verify_id_block(
            &IdBlockEvidence {
                block: &block,
                auth: &auth,
                id_key_spki: id_key,
                author_key_spki: author_key,
            },
            entries,
        );
        if let Some(bad) = lines.iter().find(|c| c.status == Status::Failed) {
            out.push(Check {
                check: "snp-id-blocks",
                status: Status::Failed,
                detail: format!(
                    "the manifest's ID block for {} ({} vCPU(s), {}): {}: {}",
                    e.measurement, e.vcpus, e.vcpu_type, bad.check, bad.detail
                ),
            });
            return;
        }
    }
    let digest = with_blocks[0]
        .id_block
        .as_ref()
        .map_or("", |i| i.id_key_digest.as_str());
    let pinned = if id_key.is_some() {
        "the pinned"
    } else {
        "its"
    };
    out.push(Check {
        check: "snp-id-blocks",
        status: Status::Ok,
        detail: format!(
            "the manifest's {} ID block(s) carry their digests and policies and verify with {pinned} \
             ID key (digest {digest})",
            with_blocks.len()
        ),
    });
}

/// A pinned public key (SPKI PEM) as DER.
fn pin(path: &Path, flag: &str) -> Result<Vec<u8>> {
    let pem = crate::infile::read_capped(path, crate::infile::KEY_MAX, "public key")?;
    let text = String::from_utf8(pem)
        .with_context(|| format!("{flag} {}: not PEM text", path.display()))?;
    let key = measurements::cvm::IdPublicKey::from_spki_pem(&text)
        .with_context(|| format!("{flag} {}", path.display()))?;
    Ok(key.spki_der())
}

/// An ID block or ID auth file: the raw structure, or its base64 text (`id-block=` /
/// `id-auth=` prefixes allowed).
fn read(path: &Path, flag: &str, len: usize) -> Result<Vec<u8>> {
    let bytes = crate::infile::read_capped(path, 64 << 10, flag)?;
    if bytes.len() == len {
        return Ok(bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let t = text.trim();
    let t = t
        .strip_prefix("id-block=")
        .or_else(|| t.strip_prefix("id-auth="))
        .unwrap_or(t);
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .with_context(|| {
            format!(
                "{flag} {}: neither the raw {len}-byte structure nor its base64",
                path.display()
            )
        })
}
