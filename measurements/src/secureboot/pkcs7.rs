//! PKCS#7 v1.5 `SignedData` as UEFI firmware verifies it (edk2 `Pkcs7Verify` on OpenSSL):
//! version 1, one SHA-256 signer identified by issuer and serial number, RSA PKCS#1 v1.5. Built
//! from the `cms` / `x509-cert` types and DER-encoded by `der`; the signature comes from a
//! [`Signer`]. Deterministic: no signing time, no random fields.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, Null, OctetString, SetOfVec};
use der::{Decode, Encode, Reader};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::SecureBootError;
use crate::signer::{Scheme, Signer};

/// `id-signedData`.
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `id-data`.
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// `id-sha256`.
pub const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `rsaEncryption`.
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-contentType` attribute.
pub const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// `id-messageDigest` attribute.
pub const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// An algorithm identifier with NULL parameters (as signtool and sbsign write SHA-256 and RSA).
pub fn alg_null(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::from(Null)),
    }
}

/// An attribute with one value.
pub fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, SecureBootError> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(der_err)?;
    Ok(Attribute { oid, values })
}

/// What is signed.
#[derive(Debug)]
pub enum Content<'a> {
    /// Detached `id-data` content: these bytes are signed directly, no attributes
    /// (`EFI_VARIABLE_AUTHENTICATION_2`).
    Detached(&'a [u8]),
    /// Encapsulated content of `content_type` (DER of the value in `econtent`), signed through
    /// authenticated attributes: content type, message digest and `extra` (Authenticode).
    Attributed {
        /// The eContentType.
        content_type: ObjectIdentifier,
        /// The DER of the encapsulated content.
        econtent: &'a [u8],
        /// Further signed attributes.
        extra: Vec<Attribute>,
    },
}

/// Checks that `cert` is usable by UEFI firmware with `signer`: its public key is the signer's
/// and RSA.
pub fn check_pair(cert: &Certificate, signer: &dyn Signer) -> Result<(), SecureBootError> {
    if !matches!(signer.scheme(), Scheme::RsaPkcs1Sha256 { .. }) {
        return Err(SecureBootError::Key(format!(
            "{} is a {} key; UEFI Secure Boot verifies RSA (PKCS#1 v1.5, SHA-256) only",
            signer.describe(),
            signer.scheme()
        )));
    }
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(der_err)?;
    if spki != signer.public_key_der() {
        return Err(SecureBootError::Key(format!(
            "the certificate '{}' does not belong to the key {} (their public keys differ)",
            cert.tbs_certificate.subject,
            signer.describe()
        )));
    }
    Ok(())
}

/// Signs `content` with `signer` whose certificate is `cert`; returns the DER of the
/// `ContentInfo` (with `wrap`) or of the bare `SignedData`.
pub fn sign(
    content: Content<'_>,
    cert: &Certificate,
    signer: &dyn Signer,
    wrap: bool,
) -> Result<Vec<u8>, SecureBootError> {
    check_pair(cert, signer)?;
    let sha256 = alg_null(ID_SHA256);
    let (encap, signed_attrs, to_sign) = match content {
        Content::Detached(data) => (
            EncapsulatedContentInfo {
                econtent_type: ID_DATA,
                econtent: None,
            },
            None,
            data.to_vec(),
        ),
        Content::Attributed {
            content_type,
            econtent,
            extra,
        } => {
            let any = Any::from_der(econtent).map_err(der_err)?;
            // The digest covers the content octets without the outer tag and length.
            let digest = <sha2::Sha256 as sha2::Digest>::digest(any.value());
            let mut attrs = SetOfVec::new();
            attrs
                .insert(attribute(
                    ID_CONTENT_TYPE,
                    Any::encode_from(&content_type).map_err(der_err)?,
                )?)
                .map_err(der_err)?;
            let od = OctetString::new(digest.to_vec()).map_err(der_err)?;
            attrs
                .insert(attribute(
                    ID_MESSAGE_DIGEST,
                    Any::encode_from(&od).map_err(der_err)?,
                )?)
                .map_err(der_err)?;
            for a in extra {
                attrs.insert(a).map_err(der_err)?;
            }
            // The signature covers the DER of the attributes as a SET OF (tag 0x31).
            let der = attrs.to_der().map_err(der_err)?;
            (
                EncapsulatedContentInfo {
                    econtent_type: content_type,
                    econtent: Some(any),
                },
                Some(attrs),
                der,
            )
        }
    };
    let signature = signer
        .sign(&to_sign)
        .map_err(|e| SecureBootError::Key(e.to_string()))?;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs,
        signature_algorithm: alg_null(RSA_ENCRYPTION),
        signature: OctetString::new(signature).map_err(der_err)?,
        unsigned_attrs: None,
    };
    let mut digest_algorithms = SetOfVec::new();
    digest_algorithms.insert(sha256).map_err(der_err)?;
    let mut certs = SetOfVec::new();
    certs
        .insert(CertificateChoices::Certificate(cert.clone()))
        .map_err(der_err)?;
    let mut infos = SetOfVec::new();
    infos.insert(signer_info).map_err(der_err)?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms,
        encap_content_info: encap,
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(infos),
    };
    if !wrap {
        return signed.to_der().map_err(der_err);
    }
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(der_err)?,
    }
    .to_der()
    .map_err(der_err)
}

/// The certificates inside a DER `ContentInfo` holding `SignedData`.
pub fn certificates(content_info: &[u8]) -> Result<Vec<Certificate>, SecureBootError> {
    // Signers may pad the blob to 8 bytes: decode one value and allow zeros after it.
    let mut reader = der::SliceReader::new(content_info).map_err(der_err)?;
    let ci = ContentInfo::decode(&mut reader).map_err(der_err)?;
    let rest = &content_info[usize::try_from(reader.position()).map_err(der_err)?..];
    if rest.iter().any(|&b| b != 0) {
        return Err(SecureBootError::Format(format!(
            "{} bytes after the PKCS#7 structure are not padding",
            rest.len()
        )));
    }
    if ci.content_type != ID_SIGNED_DATA {
        return Err(SecureBootError::Format(format!(
            "PKCS#7 content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci.content.decode_as().map_err(der_err)?;
    Ok(sd
        .certificates
        .map(|set| {
            set.0
                .into_vec()
                .into_iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The public key of a certificate as SPKI DER.
pub fn spki_der(cert: &Certificate) -> Result<Vec<u8>, SecureBootError> {
    let spki: &SubjectPublicKeyInfoOwned = &cert.tbs_certificate.subject_public_key_info;
    spki.to_der().map_err(der_err)
}

/// A `der` error as ours.
pub fn der_err(e: der::Error) -> SecureBootError {
    SecureBootError::Format(format!("ASN.1: {e}"))
}
