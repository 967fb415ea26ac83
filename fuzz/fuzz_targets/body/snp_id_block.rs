//! Body of the `snp_id_block` fuzz target, shared with the stable replay test
//! `measurements/tests/fuzz_corpus_snp_id_block.rs` (included there by path): the SEV-SNP ID
//! block (first 0x60 bytes) and ID auth (next 0x1000 bytes) parsers, their signature check,
//! `attest::verify_id_block` against a one-entry manifest, and the guest policy spellings (the
//! input as text). Errors are fine; a panic is a bug.

use measurements::cvm::{IdAuth, IdBlock, SnpPolicy};

/// Runs every ID block parser on `data`.
pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<SnpPolicy>();
    }
    let (block, auth) = data.split_at(data.len().min(0x60));
    let auth = &auth[..auth.len().min(0x1000)];
    let parsed = IdBlock::parse(block);
    let pair = IdAuth::parse(auth);
    if let (Ok(b), Ok(a)) = (&parsed, &pair) {
        let _ = a.verify(b);
        let _ = a.to_bytes();
        let _ = a.id_key.digest();
    }
    let entry = measurements::manifest::SnpEntry {
        vcpus: 1,
        vcpu_type: "EPYC-v4".into(),
        vcpu_sig: "0x800f12".into(),
        vmm_type: "QEMU".into(),
        guest_features: "0x1".into(),
        ovmf_sha256: String::new(),
        measurement: parsed
            .as_ref()
            .map(|b| b.launch_digest.hex())
            .unwrap_or_default(),
        policy: Some("0x30000".into()),
        id_block: None,
        qemu_args: None,
    };
    let _ = measurements::attest::verify_id_block(
        &measurements::attest::IdBlockEvidence {
            block,
            auth,
            id_key_spki: None,
            author_key_spki: Some(data),
        },
        &[entry],
    );
}
