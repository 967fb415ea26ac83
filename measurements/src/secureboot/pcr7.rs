//! What UEFI firmware measures into PCR 7 (TCG PC Client PFP §3.3.4.8; edk2 `Tcg2Dxe`
//! `MeasureAllSecureVariables` and `DxeImageVerificationLib`), from the enrolled variables:
//! `EV_EFI_VARIABLE_DRIVER_CONFIG` for SecureBoot, PK, KEK, db and dbx (a missing variable with
//! zero-length data), `EV_SEPARATOR`, then one `EV_EFI_VARIABLE_AUTHORITY` per distinct db
//! entry that authorised an image. Each event's digest is over `UEFI_VARIABLE_DATA`:
//! `VariableName` GUID · `UnicodeNameLength` (u64, characters) · `VariableDataLength` (u64) ·
//! UTF-16LE name without NUL · data.
//!
//! Observed on OVMF (Debian `ovmf` 2022.11-6+deb12u2, both builds): with the non-Secure-Boot build
//! `SecureBoot` is measured as one byte `00` and PK, KEK, db, dbx with no data.

use x509_cert::Certificate;

use super::esl::{self, Entry};
use super::{utf16le, Guid, SecureBootError, EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE};
use crate::pcr::EventType;

/// `EV_EFI_VARIABLE_DRIVER_CONFIG`.
pub const EV_EFI_VARIABLE_DRIVER_CONFIG: EventType = EventType::EFI_VARIABLE_DRIVER_CONFIG;
/// `EV_EFI_VARIABLE_AUTHORITY`.
pub const EV_EFI_VARIABLE_AUTHORITY: EventType = EventType::EFI_VARIABLE_AUTHORITY;

/// The Secure Boot variables as the firmware holds them (signature-list bytes; empty = the
/// variable does not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrolledKeys {
    /// PK.
    pub pk: Vec<u8>,
    /// KEK.
    pub kek: Vec<u8>,
    /// db.
    pub db: Vec<u8>,
    /// dbx.
    pub dbx: Vec<u8>,
}

impl EnrolledKeys {
    /// Checks every list parses (sizes and entry layout).
    pub fn check(&self) -> Result<(), SecureBootError> {
        for (name, v) in self.variables() {
            esl::parse(v).map_err(|e| SecureBootError::Format(format!("{name}: {e}")))?;
        }
        Ok(())
    }

    fn variables(&self) -> [(&'static str, &[u8]); 4] {
        [
            ("PK", &self.pk),
            ("KEK", &self.kek),
            ("db", &self.db),
            ("dbx", &self.dbx),
        ]
    }
}

/// `UEFI_VARIABLE_DATA` for variable `name` of `guid` holding `data`.
pub fn variable_data(guid: Guid, name: &str, data: &[u8]) -> Vec<u8> {
    let name16 = utf16le(name);
    let mut v = Vec::with_capacity(32 + name16.len() + data.len());
    v.extend_from_slice(&guid.0);
    v.extend_from_slice(&((name16.len() / 2) as u64).to_le_bytes());
    v.extend_from_slice(&(data.len() as u64).to_le_bytes());
    v.extend_from_slice(&name16);
    v.extend_from_slice(data);
    v
}

/// One PCR 7 event: type, description and the bytes whose digest is extended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcr7Event {
    /// The event type.
    pub event_type: EventType,
    /// For people.
    pub description: String,
    /// What is hashed.
    pub data: Vec<u8>,
}

/// The PCR 7 events up to and including the separator: the Secure Boot state and the
/// enrolled variables.
pub fn config_events(secure_boot: bool, keys: &EnrolledKeys) -> Vec<Pcr7Event> {
    let mut v = vec![Pcr7Event {
        event_type: EV_EFI_VARIABLE_DRIVER_CONFIG,
        description: format!("SecureBoot = {}", u8::from(secure_boot)),
        data: variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", &[u8::from(secure_boot)]),
    }];
    for (name, data) in keys.variables() {
        let guid = if name == "PK" || name == "KEK" {
            EFI_GLOBAL_VARIABLE
        } else {
            EFI_IMAGE_SECURITY_DATABASE
        };
        let what = match esl::parse(data) {
            Ok(lists) if !data.is_empty() => format!(
                "{} entries, {} bytes",
                lists.iter().map(|l| l.entries.len()).sum::<usize>(),
                data.len()
            ),
            _ if data.is_empty() => "absent".to_string(),
            _ => format!("{} bytes", data.len()),
        };
        v.push(Pcr7Event {
            event_type: EV_EFI_VARIABLE_DRIVER_CONFIG,
            description: format!("{name} ({what})"),
            data: variable_data(guid, name, data),
        });
    }
    v.push(Pcr7Event {
        event_type: EventType::SEPARATOR,
        description: "separator".to_string(),
        data: vec![0; 4],
    });
    v
}

/// The db entry that authorises an image signed with `signatures` (the certificates of each
/// of its PKCS#7 signatures, table order): the first X.509 entry of db that is one of a
/// signature's certificates, or whose key signed one of them (RSA, SHA-256). edk2 tries the
/// signatures in order and db's certificates in order as trust anchors; a chain longer than
/// signer → db certificate is not modelled.
pub fn authorising_entry(
    db: &[u8],
    signatures: &[Vec<Certificate>],
) -> Result<Option<Entry>, SecureBootError> {
    let entries = esl::x509_entries(db)?;
    for certs in signatures {
        for entry in &entries {
            let Ok(anchor) = super::cert::parse(&entry.data, "db entry") else {
                continue;
            };
            let anchors = certs.iter().any(|c| *c == anchor || issued_by(c, &anchor));
            if anchors {
                return Ok(Some(entry.clone()));
            }
        }
    }
    Ok(None)
}

/// Whether `issuer`'s RSA key signed `cert` (sha256WithRSAEncryption).
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    use der::Encode;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject
        || cert.signature_algorithm.oid != super::cert::SHA256_WITH_RSA
    {
        return false;
    }
    let (Ok(spki), Ok(tbs)) = (
        issuer.tbs_certificate.subject_public_key_info.to_der(),
        cert.tbs_certificate.to_der(),
    ) else {
        return false;
    };
    let Ok(public) = rsa::RsaPublicKey::from_public_key_der(&spki) else {
        return false;
    };
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(cert.signature.raw_bytes()) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public)
        .verify(&tbs, &sig)
        .is_ok()
}

/// The `EV_EFI_VARIABLE_AUTHORITY` event for a db entry.
pub fn authority_event(entry: &Entry, what: &str) -> Pcr7Event {
    Pcr7Event {
        event_type: EV_EFI_VARIABLE_AUTHORITY,
        description: format!("db entry (owner {}) authorising {what}", entry.owner),
        data: variable_data(EFI_IMAGE_SECURITY_DATABASE, "db", &entry.to_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcr::{Bank, Digest};

    fn replay(events: &[Pcr7Event], bank: Bank) -> Digest {
        events
            .iter()
            .fold(bank.zero(), |pcr, e| pcr.extend(&bank.hash(&e.data)))
    }

    /// OVMF_CODE_4M.fd with an empty store, observed with swtpm (secure-boot-pcr7.md), and
    /// nitro-tpm-pcr-compute with no keys agrees.
    #[test]
    fn secure_boot_off_with_nothing_enrolled_matches_the_observed_pcr7() {
        let events = config_events(false, &EnrolledKeys::default());
        assert_eq!(events.len(), 6);
        assert_eq!(
            replay(&events, Bank::Sha256).to_hex(),
            "65caf8dd1e0ea7a6347b635d2b379c93b9a1351edc2afc3ecda700e534eb3068"
        );
        assert_eq!(
            replay(&events, Bank::Sha384).to_hex(),
            "98441c7f7625d10058c47683aec486ce311c633235eb555593a7ee791121e3578ae72d04ecef661f272d59058b77af35"
        );
    }

    #[test]
    fn variable_data_layout() {
        let v = variable_data(EFI_IMAGE_SECURITY_DATABASE, "db", b"xyz");
        assert_eq!(&v[..16], &EFI_IMAGE_SECURITY_DATABASE.0);
        assert_eq!(u64::from_le_bytes(v[16..24].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(v[24..32].try_into().unwrap()), 3);
        assert_eq!(&v[32..], b"d\0b\0xyz");
    }
}
