//! The Sigstore bundle JSON (protobuf-specs `Bundle`, JSON mapping), keyed and offline:
//! `verificationMaterial.publicKey.hint` and either a `dsseEnvelope` (what nodeimg writes)
//! or a `messageSignature` (what `cosign sign-blob` writes). Unknown fields are refused, as
//! sigstore-go's protojson parser does, so no byte of a bundle is ignored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dsse::Envelope;
use super::{Error, VerifyingKey};

/// The media type nodeimg writes.
pub const MEDIA_TYPE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// Media types accepted on input (cosign 2.5 / sigstore-go accept the same set).
pub const MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    MEDIA_TYPE_V03,
];

/// A Sigstore bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<MessageSignature>,
}

/// What identifies the signer. nodeimg writes only `publicKey`; the others are parsed so
/// that they can be refused by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<Value>,
    /// Transparency-log entries; refused when non-empty (nodeimg verifies offline against a
    /// pinned key and does not check inclusion proofs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog_entries: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<Value>,
}

/// `publicKey`: only a hint; the verifier supplies the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyIdentifier {
    /// base64(SHA-256(SPKI DER)) of the signing key.
    #[serde(default)]
    pub hint: String,
}

/// `messageSignature`: a signature over a blob (here: `manifest.json`'s bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_digest: Option<HashOutput>,
    /// base64 of the raw signature.
    pub signature: String,
}

/// `messageDigest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashOutput {
    pub algorithm: String,
    /// base64 of the digest.
    pub digest: String,
}

/// What a structurally valid bundle signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    Dsse(&'a Envelope),
    Message(&'a MessageSignature),
}

impl Bundle {
    /// A v0.3 bundle around `envelope`, hinting at `key`.
    pub fn with_envelope(key: &VerifyingKey, envelope: Envelope) -> Self {
        Bundle {
            media_type: MEDIA_TYPE_V03.into(),
            verification_material: VerificationMaterial {
                public_key: Some(PublicKeyIdentifier { hint: key.hint() }),
                certificate: None,
                x509_certificate_chain: None,
                tlog_entries: None,
                timestamp_verification_data: None,
            },
            dsse_envelope: Some(envelope),
            message_signature: None,
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing strings and JSON values cannot fail.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses bundle JSON and checks what nodeimg can verify: a known media type, a public
    /// key (no certificate, no tlog entries), and exactly one of envelope / message signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let b: Bundle =
            serde_json::from_slice(bytes).map_err(|e| Error::BundleJson(e.to_string()))?;
        if !MEDIA_TYPES.contains(&b.media_type.as_str()) {
            return Err(Error::MediaType {
                found: b.media_type,
            });
        }
        let vm = &b.verification_material;
        if vm.certificate.is_some() || vm.x509_certificate_chain.is_some() {
            return Err(Error::UnsupportedMaterial(
                "a certificate (keyless signing)",
            ));
        }
        if vm.tlog_entries.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(Error::UnsupportedMaterial("transparency-log entries"));
        }
        if vm.timestamp_verification_data.is_some() {
            return Err(Error::UnsupportedMaterial("RFC 3161 timestamps"));
        }
        if vm.public_key.is_none() {
            return Err(Error::UnsupportedMaterial(
                "no verificationMaterial.publicKey",
            ));
        }
        b.content()?;
        Ok(b)
    }

    /// The signed content.
    pub fn content(&self) -> Result<Content<'_>, Error> {
        match (&self.dsse_envelope, &self.message_signature) {
            (Some(e), None) => Ok(Content::Dsse(e)),
            (None, Some(m)) => Ok(Content::Message(m)),
            (None, None) => Err(Error::NoContent),
            (Some(_), Some(_)) => Err(Error::BothContents),
        }
    }

    /// The key hint, if the bundle has a non-empty one.
    pub fn hint(&self) -> Option<&str> {
        self.verification_material
            .public_key
            .as_ref()
            .map(|p| p.hint.as_str())
            .filter(|h| !h.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle written by `cosign sign-blob --key cosign.key --tlog-upload=false
    /// --new-bundle-format` (cosign 2.5.0, Debian trixie), P-256 key from
    /// `cosign generate-key-pair`.
    const COSIGN_SIGN_BLOB: &str = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial":{"publicKey":{"hint":"fp6CCLeHgVpvJZZICgxdW/tZ8CYGLeao7zuAgCrXkI4="}}, "messageSignature":{"messageDigest":{"algorithm":"SHA2_256", "digest":"5/GtjJ93k9297Wbrol9CjTG7w3o7qhPq0/5kWH5LkUY="}, "signature":"MEUCIQC+zzioAGCeZGnocbsB2DQsu9IjZ1MDdUALjpgSliYwHgIgCmbHnslNntq5NTScuv3+/nwo8XrG8P1PRqs7UkzU5CE="}}"#;

    #[test]
    fn parses_a_cosign_message_signature_bundle() {
        let b = Bundle::parse(COSIGN_SIGN_BLOB.as_bytes()).unwrap();
        assert_eq!(
            b.hint(),
            Some("fp6CCLeHgVpvJZZICgxdW/tZ8CYGLeao7zuAgCrXkI4=")
        );
        assert!(matches!(b.content().unwrap(), Content::Message(_)));
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let env = r#""dsseEnvelope":{"payload":"","payloadType":"t","signatures":[]}"#;
        let pk = r#""verificationMaterial":{"publicKey":{"hint":""}}"#;
        let v03 = r#""mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json""#;
        let cases = [
            (
                format!("{{{v03},{pk}}}"),
                "neither dsseEnvelope nor messageSignature",
            ),
            (
                format!(r#"{{{v03},{pk},{env},"messageSignature":{{"signature":""}}}}"#),
                "both",
            ),
            (
                format!(r#"{{"mediaType":"application/json",{pk},{env}}}"#),
                "unsupported bundle mediaType \"application/json\"",
            ),
            (
                format!(r#"{{{v03},"verificationMaterial":{{"certificate":{{}}}},{env}}}"#),
                "a certificate",
            ),
            (
                format!(
                    r#"{{{v03},"verificationMaterial":{{"publicKey":{{}},"tlogEntries":[{{}}]}},{env}}}"#
                ),
                "transparency-log",
            ),
            (
                format!(r#"{{{v03},"verificationMaterial":{{}},{env}}}"#),
                "no verificationMaterial.publicKey",
            ),
            (
                format!(r#"{{{v03},{pk},{env},"x":1}}"#),
                "unknown field `x`",
            ),
            ("{".to_string(), "not a Sigstore bundle JSON"),
        ];
        for (input, want) in cases {
            let e = Bundle::parse(input.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{input}\n  → {e}");
        }
        // An empty tlogEntries list is what protojson may write for "none".
        let ok = format!(
            r#"{{{v03},"verificationMaterial":{{"publicKey":{{}},"tlogEntries":[]}},{env}}}"#
        );
        Bundle::parse(ok.as_bytes()).unwrap();
    }
}
