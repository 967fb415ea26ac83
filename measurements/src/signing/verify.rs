//! Verification, one check per function so a caller can report each:
//!
//! 1. [`check_signature`]: the bundle's key hint (when present) is the pinned key's, and
//!    the signature verifies — over the DSSE PAE for an envelope, or over `manifest.json`'s
//!    bytes for a `messageSignature` (cosign `sign-blob`).
//! 2. [`check_subjects`]: every subject names `manifest.json` or an artifact of the manifest
//!    with the same SHA-256, and `manifest.json` itself is a subject.
//! 3. [`check_predicate`]: the predicate equals the manifest object (first difference named).
//! 4. [`check_artifact`]: a file's SHA-256 equals the manifest's entry for it.
//!
//! Only after 1 succeeds do 2–4 say anything about what the key holder signed.

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::bundle::{Content, MessageSignature};
use super::dsse::{decode, INTOTO_PAYLOAD_TYPE};
use super::{Bundle, Error, ManifestDoc, Statement, VerifyingKey, MANIFEST_SUBJECT};

/// What a verified signature covers.
#[derive(Debug, Clone, PartialEq)]
pub enum Signed {
    /// An in-toto statement (from a DSSE envelope) with the nodeimg predicate type.
    Statement(Box<Statement>),
    /// The bytes of `manifest.json` (a `messageSignature`).
    Manifest,
}

/// What a verifier accepts besides the nodeimg in-toto statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Accept a `messageSignature` (cosign `sign-blob`) over `manifest.json`'s bytes. Off by
    /// default: such a signature says nothing about its purpose, so a blob the same key signed
    /// for something else (any JSON with an `artifacts` map) would pass as a signed manifest.
    pub allow_message_signature: bool,
}

/// Checks the key hint and the signature. `manifest` is needed for a `messageSignature`.
pub fn check_signature(
    bundle: &Bundle,
    key: &VerifyingKey,
    manifest: &[u8],
    policy: Policy,
) -> Result<Signed, Error> {
    if let Some(hint) = bundle.hint() {
        let pinned = key.hint();
        if hint != pinned {
            return Err(Error::KeyHint {
                bundle: hint.to_string(),
                pinned,
            });
        }
    }
    match bundle.content()? {
        Content::Dsse(env) => {
            let payload = env.verify(key)?;
            if env.payload_type != INTOTO_PAYLOAD_TYPE {
                return Err(Error::PayloadType(env.payload_type.clone()));
            }
            Ok(Signed::Statement(Box::new(Statement::parse(&payload)?)))
        }
        Content::Message(_) if !policy.allow_message_signature => {
            Err(Error::MessageSignatureNotAllowed)
        }
        Content::Message(m) => {
            check_message(m, key, manifest)?;
            Ok(Signed::Manifest)
        }
    }
}

fn check_message(m: &MessageSignature, key: &VerifyingKey, manifest: &[u8]) -> Result<(), Error> {
    let actual: [u8; 32] = Sha256::digest(manifest).into();
    if let Some(d) = &m.message_digest {
        if d.algorithm != "SHA2_256" {
            return Err(Error::DigestAlgorithm(d.algorithm.clone()));
        }
        let signed = decode("messageSignature.messageDigest.digest", &d.digest)?;
        if signed != actual {
            return Err(Error::MessageDigest {
                signed: hex::encode(signed),
                actual: hex::encode(actual),
            });
        }
    }
    let sig = decode("messageSignature.signature", &m.signature)?;
    key.verify(manifest, &sig)
        .map_err(|cause| Error::Signature {
            over: "manifest.json (messageSignature)",
            algorithm: key.algorithm(),
            hint: key.hint(),
            cause,
        })
}

/// Which artifacts the statement names (all must match); `manifest.json` must be one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectsReport {
    /// Subject names that matched, in statement order.
    pub matched: Vec<String>,
    /// Artifacts of the manifest that are not subjects. They are still bound through the
    /// signed manifest digest; cosign's `attest-blob` names only one subject.
    pub not_listed: Vec<String>,
}

/// Compares the statement's subjects with the manifest's artifacts and its own digest.
pub fn check_subjects(statement: &Statement, doc: &ManifestDoc) -> Result<SubjectsReport, Error> {
    let known = doc.subjects();
    let mut seen = BTreeSet::new();
    for s in &statement.subject {
        let signed = s
            .digest
            .get("sha256")
            .ok_or_else(|| Error::SubjectNoSha256 {
                name: s.name.clone(),
            })?;
        if !seen.insert(s.name.as_str()) {
            return Err(Error::SubjectDuplicate {
                name: s.name.clone(),
            });
        }
        let actual = known
            .get(s.name.as_str())
            .ok_or_else(|| Error::SubjectUnknown {
                name: s.name.clone(),
                digest: signed.clone(),
            })?;
        if !signed.eq_ignore_ascii_case(actual) {
            return Err(Error::SubjectDigest {
                name: s.name.clone(),
                signed: signed.clone(),
                actual: actual.to_string(),
                listed_as: if s.name == MANIFEST_SUBJECT {
                    "manifest.json is".to_string()
                } else {
                    format!("the manifest lists {} as", s.name)
                },
            });
        }
    }
    if !seen.contains(MANIFEST_SUBJECT) {
        return Err(Error::SubjectMissing(MANIFEST_SUBJECT.into()));
    }
    Ok(SubjectsReport {
        matched: statement.subject.iter().map(|s| s.name.clone()).collect(),
        not_listed: doc
            .artifacts
            .keys()
            .filter(|n| !seen.contains(n.as_str()))
            .cloned()
            .collect(),
    })
}

/// The predicate must equal the manifest object.
pub fn check_predicate(statement: &Statement, doc: &ManifestDoc) -> Result<(), Error> {
    match first_difference(&statement.predicate, &doc.value) {
        None => Ok(()),
        Some(d) => Err(Error::PredicateMismatch {
            path: d.path,
            signed: d.left,
            manifest: d.right,
        }),
    }
}

/// `actual_sha256` (lowercase hex) of the file given for artifact `name` must equal the
/// manifest's `artifacts.<name>.sha256`.
pub fn check_artifact(doc: &ManifestDoc, name: &str, actual_sha256: &str) -> Result<(), Error> {
    let signed = doc
        .artifacts
        .get(name)
        .ok_or_else(|| Error::ArtifactMissing(name.to_string()))?;
    if signed != actual_sha256 {
        return Err(Error::ArtifactDigest {
            name: name.to_string(),
            signed: signed.clone(),
            actual: actual_sha256.to_string(),
        });
    }
    Ok(())
}

/// Everything in one call: parse, check the signature, subjects and predicate (for an
/// envelope). Returns the parsed manifest and what was signed.
pub fn verify(
    key: &VerifyingKey,
    bundle: &[u8],
    manifest: &[u8],
    policy: Policy,
) -> Result<(ManifestDoc, Signed), Error> {
    let bundle = Bundle::parse(bundle)?;
    let signed = check_signature(&bundle, key, manifest, policy)?;
    let doc = ManifestDoc::parse(manifest)?;
    if let Signed::Statement(st) = &signed {
        check_subjects(st, &doc)?;
        check_predicate(st, &doc)?;
    }
    Ok((doc, signed))
}

/// Where two JSON values first differ (depth first, object keys in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Dotted path (`pcrs.sha256.11`, `events[3].digests.sha256`), `(top level)` for the root.
    pub path: String,
    /// The left value, compact JSON cut to 100 characters, or `(absent)`.
    pub left: String,
    /// The right value, likewise.
    pub right: String,
}

/// The first place where `left` and `right` differ, or `None` if they are equal.
pub fn first_difference(left: &Value, right: &Value) -> Option<Difference> {
    diff_at(String::new(), Some(left), Some(right))
}

fn diff_at(path: String, left: Option<&Value>, right: Option<&Value>) -> Option<Difference> {
    match (left, right) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_at(p, a.get(k), b.get(k))
            })
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => (0..a.len().max(b.len()))
            .find_map(|i| diff_at(format!("{path}[{i}]"), a.get(i), b.get(i))),
        (a, b) if a == b => None,
        (a, b) => Some(Difference {
            path: if path.is_empty() {
                "(top level)".into()
            } else {
                path
            },
            left: show(a),
            right: show(b),
        }),
    }
}

fn show(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return "(absent)".into();
    };
    let text = v.to_string();
    if text.chars().count() <= 100 {
        return text;
    }
    let cut: String = text.chars().take(97).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_difference_names_the_path() {
        let base =
            json!({"pcrs":{"sha256":{"4":"aa","11":"bb"}},"events":[{"pcr":4},{"pcr":11}],"x":1});
        let cases = [
            (
                json!({"pcrs":{"sha256":{"4":"aa","11":"cc"}},"events":[{"pcr":4},{"pcr":11}],"x":1}),
                Some(("pcrs.sha256.11", "\"bb\"", "\"cc\"")),
            ),
            (
                json!({"pcrs":{"sha256":{"4":"aa","11":"bb"}},"events":[{"pcr":4},{"pcr":12}],"x":1}),
                Some(("events[1].pcr", "11", "12")),
            ),
            (
                json!({"pcrs":{"sha256":{"4":"aa","11":"bb"}},"events":[{"pcr":4}],"x":1}),
                Some(("events[1]", "{\"pcr\":11}", "(absent)")),
            ),
            (
                json!({"pcrs":{"sha256":{"4":"aa","11":"bb"}},"events":[{"pcr":4},{"pcr":11}]}),
                Some(("x", "1", "(absent)")),
            ),
            (
                json!({"pcrs":{"sha256":{"4":"aa","11":"bb"}},"events":[{"pcr":4},{"pcr":11}],"x":1,"y":2}),
                Some(("y", "(absent)", "2")),
            ),
            (json!([1]), Some(("(top level)", "", "[1]"))),
            (base.clone(), None),
        ];
        for (other, want) in cases {
            let got = first_difference(&base, &other);
            match (got, want) {
                (None, None) => {}
                (Some(d), Some((path, left, right))) => {
                    assert_eq!(d.path, path);
                    if !left.is_empty() {
                        assert_eq!((d.left.as_str(), d.right.as_str()), (left, right));
                    }
                }
                (got, want) => panic!("{other}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn long_values_are_cut() {
        let d = first_difference(&json!("a".repeat(300)), &json!("b")).unwrap();
        assert_eq!(d.left.chars().count(), 100);
        assert!(d.left.ends_with("..."));
    }
}
