//! DSSE v1 (Dead Simple Signing Envelope): the signature covers the pre-authentication
//! encoding `"DSSEv1" SP len(type) SP type SP len(body) SP body` (lengths as decimal ASCII),
//! so the payload type is bound and the exact payload bytes are signed (no canonical JSON).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{Error, VerifyingKey};

/// The payload type of an in-toto Statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The bytes a DSSE signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope as it appears in a Sigstore bundle's `dsseEnvelope` (base64 fields kept
/// as text; [`Envelope::verify`] decodes them and names the field that is malformed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// base64 of the exact payload bytes.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// base64 of the raw signature (64 bytes Ed25519, or DER ECDSA).
    pub sig: String,
    /// Optional key id; nodeimg leaves it empty (and then omits it), as cosign does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
}

impl Envelope {
    /// Signs `payload` under `payload_type` with `key`.
    pub fn sign(
        key: &dyn crate::signer::Signer,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<Self, Error> {
        let sig = key
            .sign(&pae(payload_type, payload))
            .map_err(|e| Error::Signer(e.to_string()))?;
        Ok(Envelope {
            payload: B64.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature {
                sig: B64.encode(sig),
                keyid: String::new(),
            }],
        })
    }

    /// Checks the single signature against `key` and returns the payload bytes.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Vec<u8>, Error> {
        let [signature] = self.signatures.as_slice() else {
            return Err(Error::SignatureCount(self.signatures.len()));
        };
        let payload = decode("dsseEnvelope.payload", &self.payload)?;
        let sig = decode("dsseEnvelope.signatures[0].sig", &signature.sig)?;
        key.verify(&pae(&self.payload_type, &payload), &sig)
            .map_err(|cause| Error::Signature {
                over: "the DSSE envelope (PAE of payloadType and payload)",
                algorithm: key.algorithm(),
                hint: key.hint(),
                cause,
            })?;
        Ok(payload)
    }
}

/// Strict standard base64 (padded, canonical trailing bits), naming `field` on failure.
pub(crate) fn decode(field: &'static str, text: &str) -> Result<Vec<u8>, Error> {
    B64.decode(text).map_err(|e| Error::Base64 {
        field,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{Algorithm, SigningKey};

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE v1 protocol document (secure-systems-lab/dsse, protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
        let p = pae(INTOTO_PAYLOAD_TYPE, b"{}");
        assert_eq!(p, b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec());
    }

    #[test]
    fn sign_then_verify_returns_the_payload() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let key = SigningKey::from_seed(alg, &[7; 32]).unwrap();
            let env = Envelope::sign(&key, INTOTO_PAYLOAD_TYPE, b"{\"a\":1}").unwrap();
            assert_eq!(env.verify(&key.verifying_key()).unwrap(), b"{\"a\":1}");
            let json = serde_json::to_string(&env).unwrap();
            assert!(!json.contains("keyid"), "{json}");
        }
    }

    #[test]
    fn the_payload_type_is_signed() {
        let key = SigningKey::from_seed(Algorithm::Ed25519, &[7; 32]).unwrap();
        let mut env = Envelope::sign(&key, INTOTO_PAYLOAD_TYPE, b"{}").unwrap();
        env.payload_type = "application/json".into();
        let e = env.verify(&key.verifying_key()).unwrap_err();
        assert!(matches!(e, Error::Signature { .. }), "{e}");
    }

    #[test]
    fn signature_count_and_base64_errors_name_the_field() {
        let key = SigningKey::from_seed(Algorithm::Ed25519, &[7; 32]).unwrap();
        let vk = key.verifying_key();
        let env = Envelope::sign(&key, INTOTO_PAYLOAD_TYPE, b"{}").unwrap();
        let mut two = env.clone();
        two.signatures.push(two.signatures[0].clone());
        assert_eq!(two.verify(&vk), Err(Error::SignatureCount(2)));
        let mut none = env.clone();
        none.signatures.clear();
        assert_eq!(none.verify(&vk), Err(Error::SignatureCount(0)));
        let mut bad = env.clone();
        bad.payload.push('!');
        let e = bad.verify(&vk).unwrap_err().to_string();
        assert!(
            e.starts_with("dsseEnvelope.payload is not valid base64"),
            "{e}"
        );
        let mut bad = env;
        bad.signatures[0].sig.insert(0, '*');
        let e = bad.verify(&vk).unwrap_err().to_string();
        assert!(
            e.starts_with("dsseEnvelope.signatures[0].sig is not valid"),
            "{e}"
        );
    }
}
