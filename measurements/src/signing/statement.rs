//! The in-toto Statement v1 nodeimg signs, and the generic view of `manifest.json` it is
//! built from (only `artifacts` is interpreted; every other field is carried as is).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Error, MANIFEST_SUBJECT, PREDICATE_TYPE};

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// `_type` of the older v0.1 Statement, which cosign 2.5's `attest-blob` writes.
pub const STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";

/// `manifest.json` as a verifier sees it: its exact bytes' SHA-256, the JSON object, and
/// the artifact digests from `artifacts.<name>.sha256`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestDoc {
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// The parsed object.
    pub value: Value,
    /// Artifact name → SHA-256 (lowercase hex), in name order.
    pub artifacts: BTreeMap<String, String>,
}

impl ManifestDoc {
    /// Parses the bytes of `manifest.json`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| Error::ManifestJson(e.to_string()))?;
        let shape = |s: String| Error::ManifestShape(s);
        let obj = value
            .as_object()
            .ok_or_else(|| shape("the top level is not a JSON object".into()))?;
        let arts = obj
            .get("artifacts")
            .and_then(Value::as_object)
            .ok_or_else(|| shape("no \"artifacts\" object".into()))?;
        let mut artifacts = BTreeMap::new();
        for (name, a) in arts {
            if name == MANIFEST_SUBJECT {
                return Err(shape(format!(
                    "artifacts lists {MANIFEST_SUBJECT}, a name reserved for the manifest itself"
                )));
            }
            let sha = a
                .get("sha256")
                .and_then(Value::as_str)
                .ok_or_else(|| shape(format!("artifacts.{name} has no \"sha256\" string")))?;
            if !is_sha256_hex(sha) {
                return Err(shape(format!(
                    "artifacts.{name}.sha256 is not 64 lowercase hex digits"
                )));
            }
            artifacts.insert(name.clone(), sha.to_string());
        }
        Ok(ManifestDoc {
            sha256: hex::encode(Sha256::digest(bytes)),
            value,
            artifacts,
        })
    }

    /// Every name a subject may carry, with its SHA-256: the artifacts and `manifest.json`.
    pub fn subjects(&self) -> BTreeMap<&str, &str> {
        let mut all: BTreeMap<&str, &str> = self
            .artifacts
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_str()))
            .collect();
        all.insert(MANIFEST_SUBJECT, &self.sha256);
        all
    }
}

/// An in-toto Statement. Fields serialize in this order; unknown fields are ignored on
/// parsing, as the in-toto spec requires of consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    #[serde(default)]
    pub predicate: Value,
}

/// One subject: a name and its digests (algorithm → lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Statement {
    /// The statement for a manifest: subjects = its artifacts (name order) then
    /// `manifest.json`; predicate = the manifest object.
    pub fn for_manifest(doc: &ManifestDoc) -> Self {
        let subject = doc
            .artifacts
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_str()))
            .chain([(MANIFEST_SUBJECT, doc.sha256.as_str())])
            .map(|(name, sha)| Subject {
                name: name.to_string(),
                digest: [("sha256".to_string(), sha.to_string())].into(),
            })
            .collect();
        Statement {
            statement_type: STATEMENT_V1.into(),
            subject,
            predicate_type: PREDICATE_TYPE.into(),
            predicate: doc.value.clone(),
        }
    }

    /// Compact JSON: the exact payload bytes that get signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing strings, maps and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a DSSE payload and checks `_type` and `predicateType`.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let s: Statement =
            serde_json::from_slice(payload).map_err(|e| Error::StatementJson(e.to_string()))?;
        if s.statement_type != STATEMENT_V1 && s.statement_type != STATEMENT_V01 {
            return Err(Error::StatementType(s.statement_type));
        }
        if s.predicate_type != PREDICATE_TYPE {
            return Err(Error::PredicateType {
                expected: PREDICATE_TYPE,
                found: s.predicate_type,
            });
        }
        Ok(s)
    }
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn statement_lists_artifacts_then_the_manifest() {
        let m = format!(
            r#"{{"schema":"nodeimg.manifest/v1","artifacts":{{"uki.efi":{{"sha256":"{SHA_A}"}},"disk.raw":{{"sha256":"{}"}}}},"pcrs":{{"sha256":{{"11":"00"}}}}}}"#,
            SHA_A.replace('a', "b")
        );
        let doc = ManifestDoc::parse(m.as_bytes()).unwrap();
        let st = Statement::for_manifest(&doc);
        let names: Vec<_> = st.subject.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["disk.raw", "uki.efi", "manifest.json"]);
        assert_eq!(
            st.subject[2].digest["sha256"],
            hex::encode(Sha256::digest(&m))
        );
        assert_eq!(st.predicate["pcrs"]["sha256"]["11"], "00");
        let text = String::from_utf8(st.to_bytes()).unwrap();
        assert!(
            text.starts_with(r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"disk.raw","digest":{"sha256":"bbbb"#),
            "{text}"
        );
        assert!(text.contains(
            r#"],"predicateType":"https://nodeimg.dev/measurements/v1","predicate":{"artifacts":"#
        ));
        assert_eq!(Statement::parse(text.as_bytes()).unwrap(), st);
    }

    #[test]
    fn manifest_shape_errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("[]", "top level is not a JSON object"),
            ("{}", "no \"artifacts\" object"),
            (r#"{"artifacts":{"d":{}}}"#, "artifacts.d has no \"sha256\""),
            (
                r#"{"artifacts":{"d":{"sha256":"AB"}}}"#,
                "artifacts.d.sha256 is not 64",
            ),
            (
                &format!(r#"{{"artifacts":{{"manifest.json":{{"sha256":"{SHA_A}"}}}}}}"#),
                "reserved",
            ),
            ("{", "not valid JSON"),
        ];
        for (input, want) in cases {
            let e = ManifestDoc::parse(input.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{input}: {e}");
        }
    }

    #[test]
    fn parse_checks_type_and_predicate_type() {
        let cases = [
            (STATEMENT_V1, PREDICATE_TYPE, None),
            (STATEMENT_V01, PREDICATE_TYPE, None),
            (
                "https://in-toto.io/Statement/v2",
                PREDICATE_TYPE,
                Some("_type"),
            ),
            (
                STATEMENT_V1,
                "https://slsa.dev/provenance/v1",
                Some("predicateType"),
            ),
        ];
        for (ty, pt, err) in cases {
            let text =
                format!(r#"{{"_type":"{ty}","subject":[],"predicateType":"{pt}","extra":1}}"#);
            match (Statement::parse(text.as_bytes()), err) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{e}"),
                (r, w) => panic!("{ty} {pt}: {r:?}, expected error {w:?}"),
            }
        }
        let e = Statement::parse(b"[1]").unwrap_err();
        assert!(matches!(e, Error::StatementJson(_)), "{e}");
    }
}
