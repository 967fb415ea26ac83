//! Errors of signing and verification. Each names what differed and, where there are two
//! values, both (signed vs. actual). None carries key material.

/// A key could not be read or written. Messages never include the key's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("not a {expected} PEM file: {reason}")]
    Pem {
        expected: &'static str,
        reason: String,
    },
    #[error("expected a PEM `{expected}`, found `{found}` ({hint})")]
    Label {
        expected: &'static str,
        found: String,
        hint: &'static str,
    },
    #[error("malformed {what}: {reason}")]
    Der { what: &'static str, reason: String },
    #[error("unsupported key type ({0}); nodeimg signs with Ed25519 or ECDSA P-256")]
    Unsupported(String),
    #[error("the 32 seed bytes are not a valid P-256 scalar; draw new ones")]
    SeedOutOfRange,
    #[error("encoding the key: {0}")]
    Encode(String),
}

/// Why signing or verifying failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The signer (a file key or a token) failed to sign.
    #[error("{0}")]
    Signer(String),

    // --- the manifest ---
    #[error("manifest.json is not valid JSON: {0}")]
    ManifestJson(String),
    #[error("manifest.json: {0}")]
    ManifestShape(String),

    // --- the bundle's structure ---
    #[error("the bundle is not a Sigstore bundle JSON document: {0}")]
    BundleJson(String),
    #[error("unsupported bundle mediaType {found:?} (expected a Sigstore bundle v0.1–v0.3)")]
    MediaType { found: String },
    #[error("the bundle carries {0}, which nodeimg does not verify (it pins a public key: a bundle with verificationMaterial.publicKey)")]
    UnsupportedMaterial(&'static str),
    #[error("the bundle has neither dsseEnvelope nor messageSignature")]
    NoContent,
    /// A `messageSignature` bundle where the policy asks for the in-toto statement.
    #[error(
        "the bundle holds a messageSignature (cosign sign-blob) over manifest.json's bytes, not \
         the nodeimg in-toto statement; such a signature does not say what was signed, so any \
         blob the same key signed could pass as a manifest: sign with `nodeimg sign` (or cosign \
         attest-blob --type https://nodeimg.dev/measurements/v1), or accept it explicitly with \
         --allow-message-signature"
    )]
    MessageSignatureNotAllowed,
    #[error("the bundle has both dsseEnvelope and messageSignature")]
    BothContents,
    #[error("{field} is not valid base64: {reason}")]
    Base64 { field: &'static str, reason: String },
    #[error("the DSSE envelope has {0} signatures, expected exactly 1")]
    SignatureCount(usize),

    // --- the signature ---
    #[error("the bundle's key hint {bundle} is not the pinned key's {pinned} (signed with a different key?)")]
    KeyHint { bundle: String, pinned: String },
    #[error(
        "signature over {over} does not verify with the pinned {algorithm} key {hint}: {cause}"
    )]
    Signature {
        over: &'static str,
        algorithm: crate::signing::Algorithm,
        hint: String,
        /// Not a `source`: the message already says it, and an error chain would repeat it.
        cause: crate::signing::SignatureError,
    },
    #[error("messageSignature.messageDigest uses {0:?}, expected SHA2_256")]
    DigestAlgorithm(String),
    #[error(
        "messageSignature.messageDigest is sha256:{signed}, but manifest.json is sha256:{actual}"
    )]
    MessageDigest { signed: String, actual: String },

    // --- the statement ---
    #[error("DSSE payloadType is {0:?}, expected \"application/vnd.in-toto+json\"")]
    PayloadType(String),
    #[error("the DSSE payload is not an in-toto Statement: {0}")]
    StatementJson(String),
    #[error("statement _type is {0:?}, expected https://in-toto.io/Statement/v1 (or v0.1)")]
    StatementType(String),
    #[error("predicateType is {found:?}, expected {expected:?}")]
    PredicateType {
        expected: &'static str,
        found: String,
    },
    #[error("subject {name:?} has no sha256 digest")]
    SubjectNoSha256 { name: String },
    #[error("subject {name:?} is listed twice")]
    SubjectDuplicate { name: String },
    #[error("subject {name:?} (sha256:{digest}) is neither manifest.json nor an artifact of the manifest")]
    SubjectUnknown { name: String, digest: String },
    #[error(
        "subject {name:?}: the statement signs sha256:{signed}, but {listed_as} sha256:{actual}"
    )]
    SubjectDigest {
        name: String,
        signed: String,
        actual: String,
        /// Where `actual` comes from: the manifest's own bytes, or its `artifacts` entry.
        listed_as: String,
    },
    #[error("the statement does not list {0} among its subjects")]
    SubjectMissing(String),
    #[error(
        "predicate differs from manifest.json at {path}: signed {signed}, manifest has {manifest}"
    )]
    PredicateMismatch {
        path: String,
        signed: String,
        manifest: String,
    },

    // --- artifacts checked against the (signed) manifest ---
    #[error("the manifest lists no artifact {0:?}")]
    ArtifactMissing(String),
    #[error("{name}: the signed manifest says sha256:{signed}, the file given is sha256:{actual}")]
    ArtifactDigest {
        name: String,
        signed: String,
        actual: String,
    },
}
