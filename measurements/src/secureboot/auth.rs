//! Time-based authenticated variable payloads (`.auth`): what `SetVariable` takes to enroll or
//! replace PK, KEK, db and dbx once Secure Boot is set up, and what clouds take as uploads.
//! `EFI_VARIABLE_AUTHENTICATION_2` = `TimeStamp` (EFI_TIME) · `WIN_CERTIFICATE_UEFI_GUID`
//! (`dwLength`, revision 0x0200, type `WIN_CERT_TYPE_EFI_GUID` 0x0EF1, `CertType`
//! `EFI_CERT_TYPE_PKCS7_GUID`, `CertData`), followed by the new variable data. `CertData` is a
//! DER `SignedData` without the `ContentInfo` wrapper (as efitools' `sign-efi-sig-list` writes
//! it), detached, no signed attributes, SHA-256, over
//! `VariableName (UTF-16LE, no NUL) · VendorGuid · Attributes (u32) · TimeStamp · Data`
//! (UEFI 2.10 §8.2.2).

use x509_cert::Certificate;

use super::pkcs7::{self, Content};
use super::{utf16le, EfiTime, Guid, SecureBootError, EFI_CERT_TYPE_PKCS7};
use crate::signer::Signer;

/// `WIN_CERT_TYPE_EFI_GUID`.
pub const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0ef1;

/// The bytes the parent key signs for a variable update.
pub fn signed_bytes(
    name: &str,
    guid: Guid,
    attributes: u32,
    time: EfiTime,
    data: &[u8],
) -> Vec<u8> {
    let mut v = utf16le(name);
    v.extend_from_slice(&guid.0);
    v.extend_from_slice(&attributes.to_le_bytes());
    v.extend_from_slice(&time.to_bytes());
    v.extend_from_slice(data);
    v
}

/// The `.auth` payload setting variable `name` to `data`, signed by `signer` (certificate
/// `cert`): PK signs PK and KEK updates, KEK signs db and dbx updates.
pub fn payload(
    name: &str,
    guid: Guid,
    attributes: u32,
    time: EfiTime,
    data: &[u8],
    cert: &Certificate,
    signer: &dyn Signer,
) -> Result<Vec<u8>, SecureBootError> {
    let signed = signed_bytes(name, guid, attributes, time, data);
    let p7 = pkcs7::sign(Content::Detached(&signed), cert, signer, false)?;
    let length = u32::try_from(8 + 16 + p7.len())
        .map_err(|_| SecureBootError::Format("signature too large".to_string()))?;
    let mut out = Vec::with_capacity(16 + length as usize + data.len());
    out.extend_from_slice(&time.to_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&0x0200u16.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_EFI_GUID.to_le_bytes());
    out.extend_from_slice(&EFI_CERT_TYPE_PKCS7.0);
    out.extend_from_slice(&p7);
    out.extend_from_slice(data);
    Ok(out)
}

/// A parsed `.auth` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// `TimeStamp`.
    pub time: EfiTime,
    /// The DER `SignedData` (`CertData`).
    pub signed_data: Vec<u8>,
    /// The variable data that follows.
    pub data: Vec<u8>,
}

/// Splits a `.auth` payload into its parts (sizes checked; the signature is not verified).
pub fn parse(bytes: &[u8]) -> Result<Payload, SecureBootError> {
    let err =
        |why: String| SecureBootError::Format(format!("EFI_VARIABLE_AUTHENTICATION_2: {why}"));
    if bytes.len() < 16 + 24 {
        return Err(err(format!(
            "{} bytes; the header alone needs 40",
            bytes.len()
        )));
    }
    let time = EfiTime::from_bytes(bytes[..16].try_into().expect("16 bytes"));
    let length = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")) as usize;
    let revision = u16::from_le_bytes([bytes[20], bytes[21]]);
    let cert_type = u16::from_le_bytes([bytes[22], bytes[23]]);
    if revision != 0x0200 || cert_type != WIN_CERT_TYPE_EFI_GUID {
        return Err(err(format!(
            "WIN_CERTIFICATE revision {revision:#06x} type {cert_type:#06x} (0x0200 / 0x0ef1 expected)"
        )));
    }
    if Guid::from_bytes(&bytes[24..40]) != Some(EFI_CERT_TYPE_PKCS7) {
        return Err(err("CertType is not EFI_CERT_TYPE_PKCS7_GUID".to_string()));
    }
    if length < 24 || length > bytes.len() - 16 {
        return Err(err(format!(
            "dwLength {length:#x} does not fit the {:#x} bytes after the time stamp",
            bytes.len() - 16
        )));
    }
    Ok(Payload {
        time,
        signed_data: bytes[40..16 + length].to_vec(),
        data: bytes[16 + length..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secureboot::{cert, EFI_GLOBAL_VARIABLE, SECURE_VARIABLE_ATTRS};
    use crate::signer::RsaKey;

    #[test]
    fn payload_round_trips_and_the_signature_covers_name_guid_attrs_time_data() {
        let k = RsaKey::generate(&mut rand_core::OsRng, 2048, "PK").unwrap();
        let c =
            cert::self_signed(&k, "PK", &[1; 8], std::time::SystemTime::now(), 1, false).unwrap();
        let time = EfiTime::from_unix(1_700_000_000);
        let data = b"esl bytes".to_vec();
        let p = payload(
            "PK",
            EFI_GLOBAL_VARIABLE,
            SECURE_VARIABLE_ATTRS,
            time,
            &data,
            &c,
            &k,
        )
        .unwrap();
        let back = parse(&p).unwrap();
        assert_eq!((back.time, back.data.clone()), (time, data.clone()));
        // Deterministic for a given key.
        assert_eq!(
            p,
            payload(
                "PK",
                EFI_GLOBAL_VARIABLE,
                SECURE_VARIABLE_ATTRS,
                time,
                &data,
                &c,
                &k
            )
            .unwrap()
        );
        let e = parse(&p[..30]).unwrap_err().to_string();
        assert!(e.contains("header alone"), "{e}");
        let mut bad = p.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&bad).unwrap_err().to_string().contains("dwLength"));
    }
}
