//! X.509 certificates for Secure Boot: self-signed PK / KEK / db certificates made through a
//! [`Signer`], and reading user-supplied certificates (PEM or DER) with the checks the firmware
//! would otherwise fail on silently.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, OctetString};
use der::{Decode, DecodePem, Encode};
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

use super::pkcs7::{alg_null, der_err, RSA_ENCRYPTION};
use super::SecureBootError;
use crate::signer::{Scheme, Signer};

/// `sha256WithRSAEncryption`.
pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const ID_CE_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const ID_CE_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const ID_CE_SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// `id-kp-codeSigning`.
const ID_KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// Upper bound for a certificate file (PEM or DER).
pub const CERT_MAX: usize = 64 * 1024;

fn extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, SecureBootError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(der_err)?).map_err(der_err)?,
    })
}

/// A self-signed CA certificate for `signer` named `CN=common_name`, valid from `not_before`
/// for `years`; `serial` are 1–20 random bytes. `code_signing` adds the codeSigning extended
/// key usage (for the db certificate that signs images).
pub fn self_signed(
    signer: &dyn Signer,
    common_name: &str,
    serial: &[u8],
    not_before: SystemTime,
    years: u64,
    code_signing: bool,
) -> Result<Certificate, SecureBootError> {
    if !matches!(signer.scheme(), Scheme::RsaPkcs1Sha256 { .. }) {
        return Err(SecureBootError::Key(format!(
            "{}: Secure Boot certificates need an RSA key",
            signer.describe()
        )));
    }
    let cn = common_name.replace(['\\', ',', '+', '"', '<', '>', ';', '='], "_");
    let name = Name::from_str(&format!("CN={cn}")).map_err(der_err)?;
    let mut serial = serial.to_vec();
    if let Some(b) = serial.first_mut() {
        *b &= 0x7f; // positive
        *b |= 0x01; // no leading zero byte to strip
    }
    let spki_der = signer.public_key_der();
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(&spki_der).map_err(der_err)?;
    let key_id = <sha2::Sha256 as sha2::Digest>::digest(spki.subject_public_key.raw_bytes());
    let mut extensions = vec![
        extension(
            ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?,
        extension(
            ID_CE_KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        )?,
        extension(
            ID_CE_SUBJECT_KEY_ID,
            false,
            &OctetString::new(&key_id[..20]).map_err(der_err)?,
        )?,
    ];
    if code_signing {
        extensions.push(extension(
            ID_CE_EXT_KEY_USAGE,
            false,
            &ExtendedKeyUsage(vec![ID_KP_CODE_SIGNING]),
        )?);
    }
    let not_after = not_before + Duration::from_secs(years * 365 * 86_400);
    let time = |t: SystemTime| {
        Time::try_from(t).map_err(|e| SecureBootError::Key(format!("certificate time: {e}")))
    };
    let alg = alg_null(SHA256_WITH_RSA);
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(der_err)?,
        signature: alg.clone(),
        issuer: name.clone(),
        validity: Validity {
            not_before: time(not_before)?,
            not_after: time(not_after)?,
        },
        subject: name,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let signature = signer
        .sign(&tbs.to_der().map_err(der_err)?)
        .map_err(|e| SecureBootError::Key(e.to_string()))?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&signature).map_err(der_err)?,
    })
}

/// Parses a certificate file's bytes (PEM `CERTIFICATE` or DER). `label` names it in errors.
pub fn parse(bytes: &[u8], label: &str) -> Result<Certificate, SecureBootError> {
    let cert = if bytes.starts_with(b"-----BEGIN") || bytes.iter().take(64).all(u8::is_ascii) {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| SecureBootError::Key(format!("{label}: not a PEM or DER certificate")))?;
        let start = text.find("-----BEGIN CERTIFICATE-----").ok_or_else(|| {
            SecureBootError::Key(format!(
                "{label}: no 'BEGIN CERTIFICATE' PEM block (an X.509 certificate, PEM or DER, is \
                 expected)"
            ))
        })?;
        Certificate::from_pem(&text[start..])
            .map_err(|e| SecureBootError::Key(format!("{label}: not an X.509 certificate: {e}")))?
    } else {
        Certificate::from_der(bytes)
            .map_err(|e| SecureBootError::Key(format!("{label}: not an X.509 certificate: {e}")))?
    };
    Ok(cert)
}

/// Checks a certificate the firmware must use: an RSA key of 2048–4096 bits, valid at `now`.
pub fn check_usable(
    cert: &Certificate,
    label: &str,
    now: SystemTime,
) -> Result<(), SecureBootError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(SecureBootError::Key(format!(
            "{label}: the certificate's key is {} (not RSA); UEFI Secure Boot verifies RSA \
             signatures only: make an RSA-2048 key (nodeimg keygen --secure-boot)",
            spki.algorithm.oid
        )));
    }
    let validity = &cert.tbs_certificate.validity;
    let not_after = validity.not_after.to_system_time();
    if not_after < now {
        return Err(SecureBootError::Key(format!(
            "{label}: the certificate expired on {} (subject '{}'); make or renew the key pair",
            validity.not_after, cert.tbs_certificate.subject
        )));
    }
    Ok(())
}

/// The certificate's DER.
pub fn to_der(cert: &Certificate) -> Result<Vec<u8>, SecureBootError> {
    cert.to_der().map_err(der_err)
}

/// The certificate as PEM.
pub fn to_pem(cert: &Certificate) -> Result<String, SecureBootError> {
    use der::EncodePem;
    cert.to_pem(der::pem::LineEnding::LF).map_err(der_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::RsaKey;

    #[test]
    fn self_signed_certificate_verifies_with_its_own_key() {
        let k = RsaKey::generate(&mut rand_core::OsRng, 2048, "db").unwrap();
        let c = self_signed(&k, "nodeimg db", &[0x80; 16], SystemTime::now(), 20, true).unwrap();
        let der = to_der(&c).unwrap();
        let back = parse(&der, "der").unwrap();
        assert_eq!(back, c);
        let pem = to_pem(&c).unwrap();
        assert_eq!(parse(pem.as_bytes(), "pem").unwrap(), c);
        // The signature over the TBS verifies with the certificate's key.
        use rsa::pkcs8::DecodePublicKey;
        use rsa::signature::Verifier;
        let public = rsa::RsaPublicKey::from_public_key_der(&k.public_key_der()).unwrap();
        let v = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public);
        let sig = rsa::pkcs1v15::Signature::try_from(c.signature.raw_bytes()).unwrap();
        v.verify(&c.tbs_certificate.to_der().unwrap(), &sig)
            .unwrap();
        check_usable(&c, "db", SystemTime::now()).unwrap();
        let later = SystemTime::now() + Duration::from_secs(21 * 365 * 86_400);
        let e = check_usable(&c, "db.crt", later).unwrap_err().to_string();
        assert!(e.contains("db.crt") && e.contains("expired"), "{e}");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        for (bytes, want) in [
            (&b"hello world"[..], "no 'BEGIN CERTIFICATE'"),
            (
                &b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"[..],
                "not an X.509",
            ),
            (&[0x30, 0x82, 0xff, 0xff, 0x00][..], "not an X.509"),
        ] {
            let e = parse(bytes, "x.crt").unwrap_err().to_string();
            assert!(e.contains("x.crt") && e.contains(want), "{e}");
        }
    }
}
