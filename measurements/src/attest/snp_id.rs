//! An SEV-SNP ID block / ID auth pair checked against a manifest's launch digests and pinned
//! keys: what a verifier runs before handing the pair to a host (or after, on what the host
//! was given).

use super::{Check, Checks, Status};
use crate::cvm::{IdAuth, IdBlock, IdPublicKey};
use crate::manifest::SnpEntry;

/// The pair and the keys the verifier pins (SPKI DER). A pin absent here falls back to the key
/// digests the signed manifest records.
#[derive(Debug, Clone, Copy)]
pub struct IdBlockEvidence<'a> {
    /// The 0x60-byte ID block.
    pub block: &'a [u8],
    /// The 0x1000-byte ID auth structure.
    pub auth: &'a [u8],
    /// The pinned ID public key.
    pub id_key_spki: Option<&'a [u8]>,
    /// The pinned author public key.
    pub author_key_spki: Option<&'a [u8]>,
}

/// The checks, one line each:
///
/// * `snp-id-block`: the block parses (version 1, no reserved policy bit) and its launch
///   digest is one of the manifest's, whose recorded policy (and family id, image id, guest
///   SVN, when the manifest has an ID block for it) the block carries too;
/// * `snp-id-auth`: the ID block signature verifies with the ID key inside the ID auth, and
///   the author key's signature over the ID key (when `AUTHOR_KEY_ALGO` is set);
/// * `snp-id-key`: that ID key is the pinned one (or, without a pin, the one whose digest the
///   manifest records) — otherwise anyone could sign a block for the digest;
/// * `snp-author-key`: the same for the author key, when one is pinned or recorded.
pub fn verify_id_block(e: &IdBlockEvidence<'_>, entries: &[SnpEntry]) -> Vec<Check> {
    let mut c = Checks::default();
    let parsed = IdBlock::parse(e.block).map_err(|x| x.to_string());
    let entry = c.result(
        "snp-id-block",
        parsed.clone().and_then(|b| block_matches(&b, entries)),
    );
    let auth =
        match (&parsed, IdAuth::parse(e.auth)) {
            (Ok(block), Ok(auth)) => {
                c.result(
                    "snp-id-auth",
                    auth.verify(block).map_err(|x| x.to_string()).map(|()| {
                        let d = match &auth.author {
                    Some(_) => "the ID block signature verifies with the ID key in the ID auth, \
                                and the author key's signature over the ID key",
                    None => "the ID block signature verifies with the ID key in the ID auth (no \
                             author key)",
                };
                        (auth.clone(), d.to_string())
                    }),
                )
            }
            (_, Err(x)) => c.result::<()>("snp-id-auth", Err(x.to_string())).and(None),
            (Err(_), Ok(_)) => {
                c.push("snp-id-auth", Status::Skipped, "the ID block did not parse");
                None
            }
        };
    let Some(auth) = auth else {
        for k in ["snp-id-key", "snp-author-key"] {
            c.push(k, Status::Skipped, "the ID auth did not verify");
        }
        return c.0;
    };
    let recorded = entry.and_then(|x| x.id_block.as_ref());
    let id = key_check(
        "ID key",
        Some(&auth.id_key),
        e.id_key_spki,
        recorded.map(|r| r.id_key_digest.as_str()),
    );
    c.result("snp-id-key", id);
    let author = auth.author.as_ref().map(|a| &a.0);
    let recorded_author = recorded.and_then(|r| r.author_key_digest.as_deref());
    if author.is_none() && e.author_key_spki.is_none() && recorded_author.is_none() {
        c.push(
            "snp-author-key",
            Status::Skipped,
            "no author key in the ID auth, none pinned, none in the manifest",
        );
    } else {
        let r = key_check("author key", author, e.author_key_spki, recorded_author);
        c.result("snp-author-key", r);
    }
    c.0
}

/// The manifest entry the block's digest names, if the policy (and recorded ids) agree.
fn block_matches<'m>(
    b: &IdBlock,
    entries: &'m [SnpEntry],
) -> Result<(&'m SnpEntry, String), String> {
    let ld = b.launch_digest.hex();
    let matching: Vec<&SnpEntry> = entries
        .iter()
        .filter(|x| x.measurement.eq_ignore_ascii_case(&ld))
        .collect();
    let Some(first) = matching.first() else {
        return Err(if entries.is_empty() {
            format!("the manifest has no SNP launch digests; the ID block is for {ld}")
        } else {
            format!(
                "the ID block's launch digest {ld} is none of the manifest's {} (a block for \
                 another image, firmware or vCPU count)",
                entries.len()
            )
        });
    };
    let policy = b.policy.to_string();
    let Some(x) = matching
        .iter()
        .find(|x| x.policy.as_deref().is_none_or(|p| p == policy))
    else {
        return Err(format!(
            "the ID block's policy {policy} ({}) is not the manifest's {} for {ld}",
            b.policy.describe(),
            first.policy.as_deref().unwrap_or("?")
        ));
    };
    if let Some(r) = &x.id_block {
        let ours = (
            hex::encode(b.family_id),
            hex::encode(b.image_id),
            b.guest_svn,
        );
        let theirs = (r.family_id.clone(), r.image_id.clone(), r.guest_svn);
        if ours != theirs {
            return Err(format!(
                "the ID block's family id / image id / guest SVN {} / {} / {} differ from the \
                 manifest's {} / {} / {}",
                ours.0, ours.1, ours.2, theirs.0, theirs.1, theirs.2
            ));
        }
    }
    Ok((
        x,
        format!(
            "launch digest {ld} and policy {policy} ({}) are the manifest's for {} vCPU(s) of \
             {} ({}); family id {}, image id {}, guest SVN {}",
            b.policy.describe(),
            x.vcpus,
            x.vcpu_type,
            x.vmm_type,
            hex::encode(b.family_id),
            hex::encode(b.image_id),
            b.guest_svn
        ),
    ))
}

/// `key` (from the ID auth) against the pinned SPKI, else the recorded digest.
fn key_check(
    what: &str,
    key: Option<&IdPublicKey>,
    pinned: Option<&[u8]>,
    recorded: Option<&str>,
) -> Result<((), String), String> {
    let Some(key) = key else {
        return Err(format!(
            "the ID auth has no {what} (AUTHOR_KEY_ALGO 0), but one is pinned or recorded"
        ));
    };
    let digest = hex::encode(key.digest());
    if let Some(der) = pinned {
        let pin = IdPublicKey::from_spki_der(der).map_err(|x| format!("the pinned {what}: {x}"))?;
        if pin != *key {
            return Err(format!(
                "the ID auth's {what} (digest {digest}) is not the pinned one (digest {})",
                hex::encode(pin.digest())
            ));
        }
        return Ok((
            (),
            format!("the {what} is the pinned one (digest {digest})"),
        ));
    }
    match recorded {
        Some(r) if r.eq_ignore_ascii_case(&digest) => Ok((
            (),
            format!("the {what} digest {digest} is the one the signed manifest records"),
        )),
        Some(r) => Err(format!(
            "the ID auth's {what} digest {digest} is not the manifest's {r}"
        )),
        None => Err(format!(
            "no {what} to check against: pin one (--snp-{}) or use a manifest with ID blocks",
            if what == "ID key" {
                "id-key"
            } else {
                "author-key"
            }
        )),
    }
}
