//! SEV-SNP ID blocks for `measure snp --id-key` and `[measurements.snp] id-key`: loads the ID
//! and author keys (P-384 PEM files or `pkcs11:` token keys), signs one ID block per launch
//! digest, and spells the QEMU `sev-snp-guest` object that uses it. The structures and the
//! signing are `measurements::cvm::idblock`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use measurements::cvm::idblock::{self, IdBlock};
use measurements::cvm::{SnpMeasurement, SnpPolicy};
use measurements::manifest::SnpIdBlock;
use measurements::signer::{P384Key, Signer};

/// Everything an ID block needs besides the launch digest.
#[derive(Debug)]
pub struct IdParams {
    pub id_key: Box<dyn Signer>,
    pub author_key: Option<Box<dyn Signer>>,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub guest_svn: u32,
}

/// Loads an ID or author key: `pkcs11:…` (a P-384 key in a token) or a PEM file. `what` names
/// the flag or config key in errors (`--id-key`).
pub fn load_key(spec: &Path, what: &str) -> Result<Box<dyn Signer>> {
    let text = spec.to_string_lossy();
    let label = format!("{what} {text}");
    let key: Box<dyn Signer> = if crate::pkcs11::is_uri(&text) {
        Box::new(crate::pkcs11::TokenKey::open(&text).with_context(|| what.to_string())?)
    } else {
        let pem = crate::infile::read_capped(spec, crate::infile::KEY_MAX, "key")
            .with_context(|| what.to_string())?;
        Box::new(P384Key::from_pem(&pem, &label)?)
    };
    idblock::signer_key(key.as_ref()).with_context(|| label.clone())?;
    Ok(key)
}

/// A family or image id: exactly 32 hex digits (16 bytes), `0x` optional.
pub fn parse_id(s: &str, what: &str) -> Result<[u8; 16]> {
    let t = s.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    let bytes = hex::decode(t)
        .with_context(|| format!("{what} `{s}`: not hex; write 32 hex digits (16 bytes)"))?;
    bytes.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{what} `{s}`: {} bytes; the id is exactly 16 bytes (32 hex digits)",
            bytes.len()
        )
    })
}

/// Signs the ID block for `measurement` and `policy`.
pub fn sign(p: &IdParams, measurement: &SnpMeasurement, policy: SnpPolicy) -> Result<SnpIdBlock> {
    let block = IdBlock {
        launch_digest: *measurement,
        family_id: p.family_id,
        image_id: p.image_id,
        guest_svn: p.guest_svn,
        policy,
    };
    let auth = idblock::sign(&block, p.id_key.as_ref(), p.author_key.as_deref())
        .with_context(|| format!("signing the ID block of {}", measurement.hex()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(SnpIdBlock {
        block: b64.encode(block.to_bytes()),
        auth: b64.encode(auth.to_bytes()),
        family_id: hex::encode(p.family_id),
        image_id: hex::encode(p.image_id),
        guest_svn: p.guest_svn,
        id_key_digest: hex::encode(auth.id_key.digest()),
        author_key_digest: auth.author.map(|(k, _)| hex::encode(k.digest())),
    })
}

/// QEMU arguments for an SNP guest with this policy (and ID block): `-object sev-snp-guest,…`
/// and the machine option that uses it. `cbitpos=51,reduced-phys-bits=1` are the values of
/// EPYC Milan, Genoa and Turin hosts.
pub fn qemu_args(policy: SnpPolicy, id: Option<&SnpIdBlock>) -> Vec<String> {
    let mut object =
        format!("sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy={policy}");
    if let Some(id) = id {
        object.push_str(&format!(",id-block={},id-auth={}", id.block, id.auth));
        if id.author_key_digest.is_some() {
            object.push_str(",author-key-enabled=on");
        }
    }
    vec![
        "-machine".into(),
        "confidential-guest-support=sev0".into(),
        "-object".into(),
        object,
    ]
}

/// Refuses a guest SVN given without an ID key (it is only meaningful inside an ID block).
pub fn require_key_for(has_key: bool, given: &[(&str, bool)]) -> Result<()> {
    if has_key {
        return Ok(());
    }
    if let Some((name, _)) = given.iter().find(|(_, g)| *g) {
        bail!("{name} goes into the ID block: give an ID key too (--id-key / id-key)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_exactly_16_bytes() {
        assert_eq!(
            parse_id("000102030405060708090a0b0c0d0e0f", "--family-id").unwrap()[15],
            15
        );
        assert!(parse_id("0x000102030405060708090a0b0c0d0e0f", "--family-id").is_ok());
        let e = parse_id("0001", "--family-id").unwrap_err().to_string();
        assert!(
            e.contains("--family-id `0001`: 2 bytes; the id is exactly 16 bytes"),
            "{e}"
        );
        let e = format!("{:#}", parse_id("xyz", "--image-id").unwrap_err());
        assert!(e.contains("--image-id `xyz`: not hex"), "{e}");
    }

    #[test]
    fn qemu_object_carries_policy_and_blocks() {
        let p = SnpPolicy::default();
        assert_eq!(
            qemu_args(p, None)[3],
            "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x30000"
        );
    }
}
