//! Signing through Sigstore services: keyless (an OIDC identity token → a short-lived Fulcio
//! certificate for an ephemeral P-256 key) and transparency-log upload (Rekor v1), with an
//! optional RFC 3161 timestamp. The clients are sigstore-rust's (`sigstore-fulcio`,
//! `sigstore-tsa`); the bundle is built with `sigstore-bundle`.
//!
//! The Rekor entry is an `intoto` v0.0.2 entry, the kind npm provenance and sigstore-js log for
//! DSSE envelopes: Rekor stores the envelope's payload hash, signature and verifier, which every
//! Sigstore verifier (sigstore-go/cosign, sigstore-js, sigstore-rust, sigstore-python) binds to
//! the bundle. The request is written here because sigstore-rekor's client only proposes
//! `hashedrekord` and `dsse` entries.
//!
//! No network call happens unless the caller asked for keyless signing or a tlog upload. Every
//! bundle is verified (certificate chain, SCT, inclusion proof, SET, timestamp) against the
//! instance's trusted root before it is returned, so a service that answers with something a
//! verifier would reject fails the signing, not the first verification.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use measurements::signing::{dsse, VerifyingKey};
use sigstore_bundle::{BundleV03, VerificationMaterialV03};
use sigstore_crypto::KeyPair;
use sigstore_oidc::IdentityToken;
use sigstore_types::{
    DsseEnvelope, DsseSignature, KeyId, KindVersion, PayloadBytes, SignatureBytes,
    SignatureContent, TransparencyLogEntry,
};
use sigstore_verify::trust_root::{SigningConfig, TrustedRoot};

use super::sigstore as verifier;

/// The public-good instance (the embedded signing config names the same services).
pub const PUBLIC_GOOD_FULCIO: &str = "https://fulcio.sigstore.dev";
/// The public-good Rekor v1 log.
pub const PUBLIC_GOOD_REKOR: &str = "https://rekor.sigstore.dev";

/// Rekor v1's answer is one entry of a few KiB; anything far larger is refused unread.
const REKOR_RESPONSE_MAX: usize = 4 << 20;
/// An identity token is a JWT of a few KiB.
const TOKEN_MAX: u64 = 64 << 10;

/// Which services to use, as the user named them (flags or `[signing]`).
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    pub fulcio_url: Option<String>,
    pub rekor_url: Option<String>,
    pub tsa_url: Option<String>,
    /// A Sigstore `SigningConfig` (v0.2 JSON) naming the instance's services.
    pub signing_config: Option<PathBuf>,
    /// The instance's trusted root, to check the bundle before it is written [default: the
    /// embedded public-good root when the public-good services are used].
    pub trusted_root: Option<PathBuf>,
}

/// The services one signing talks to.
#[derive(Debug, Clone)]
pub struct Services {
    pub fulcio: String,
    pub rekor: String,
    pub tsa: Option<String>,
    /// What the bundle is checked against before it is returned; `None` only for a private
    /// instance given without its trusted root (then a warning says the bundle is unchecked).
    pub trusted_root: Option<TrustedRoot>,
}

impl Services {
    /// Flags win over the signing config, which wins over the public-good defaults. The
    /// public-good instance gets no timestamp authority unless one is named (its Rekor v1
    /// entry carries the signed integrated time, as cosign 2 bundles do).
    pub fn resolve(o: &ServiceOptions) -> Result<Services> {
        let config = match &o.signing_config {
            Some(p) => {
                let text = crate::infile::read_capped(p, 1 << 20, "signing config")?;
                let text =
                    String::from_utf8(text).map_err(|_| anyhow!("{}: not UTF-8", p.display()))?;
                Some(SigningConfig::from_json(&text).with_context(|| {
                    format!(
                        "{}: not a Sigstore SigningConfig (v0.2 JSON with caUrls, \
                         rekorTlogUrls, tsaUrls)",
                        p.display()
                    )
                })?)
            }
            None => None,
        };
        let from_config =
            |pick: fn(&SigningConfig) -> Option<String>| config.as_ref().and_then(pick);
        let fulcio = o
            .fulcio_url
            .clone()
            .or_else(|| from_config(|c| c.fulcio_url().map(|e| e.url.clone())))
            .unwrap_or_else(|| PUBLIC_GOOD_FULCIO.to_string());
        let rekor = match (&o.rekor_url, &config) {
            (Some(u), _) => u.clone(),
            (None, Some(c)) => c.rekor_url(Some(1)).map(|e| e.url.clone()).ok_or_else(|| {
                anyhow!(
                    "{}: no Rekor v1 log among rekorTlogUrls (nodeimg logs intoto entries, \
                     which Rekor v2 does not take); name one with --rekor-url",
                    o.signing_config
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                )
            })?,
            (None, None) => PUBLIC_GOOD_REKOR.to_string(),
        };
        let tsa = o
            .tsa_url
            .clone()
            .or_else(|| from_config(|c| c.tsa_url().map(|e| e.url.clone())));
        for (what, u) in [
            ("Fulcio", Some(&fulcio)),
            ("Rekor", Some(&rekor)),
            ("TSA", tsa.as_ref()),
        ] {
            if let Some(u) = u {
                check_url(what, u)?;
            }
        }
        let public_good = fulcio == PUBLIC_GOOD_FULCIO && rekor == PUBLIC_GOOD_REKOR;
        let trusted_root = match (&o.trusted_root, public_good) {
            (Some(p), _) => Some(verifier::trusted_root(Some(p), false)?),
            (None, true) => Some(verifier::trusted_root(None, false)?),
            (None, false) => None,
        };
        Ok(Services {
            fulcio: fulcio.trim_end_matches('/').to_string(),
            rekor: rekor.trim_end_matches('/').to_string(),
            tsa,
            trusted_root,
        })
    }
}

fn check_url(what: &str, url: &str) -> Result<()> {
    let ok = url.starts_with("https://") || url.starts_with("http://");
    if !ok || url.contains(char::is_whitespace) {
        bail!("the {what} URL {url:?} is not an http(s) URL");
    }
    Ok(())
}

/// Where the OIDC identity token for keyless signing comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// The token itself (`--identity-token`).
    Value(String),
    /// A file holding it (`--identity-token-file`, `[signing] identity-token-file`).
    File(PathBuf),
    /// `$SIGSTORE_ID_TOKEN`, then the CI's ambient credentials (GitHub Actions with
    /// `id-token: write`, GitLab `id_tokens`, Buildkite, CircleCI …).
    Environment,
}

impl TokenSource {
    /// The token, checked to be a JWT that has not expired. Its signature is Fulcio's to check.
    pub fn token(&self) -> Result<IdentityToken> {
        let (raw, from) = match self {
            TokenSource::Value(t) => (t.trim().to_string(), "--identity-token".to_string()),
            TokenSource::File(p) => {
                let bytes = crate::infile::read_capped(p, TOKEN_MAX, "identity token")?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow!("{}: the identity token is not text", p.display()))?;
                (text.trim().to_string(), p.display().to_string())
            }
            TokenSource::Environment => match std::env::var("SIGSTORE_ID_TOKEN") {
                Ok(t) if !t.trim().is_empty() => {
                    (t.trim().to_string(), "$SIGSTORE_ID_TOKEN".to_string())
                }
                _ => {
                    let ambient = runtime()?
                        .block_on(IdentityToken::detect_ambient())
                        .map_err(|e| anyhow!("the CI's ambient OIDC credentials: {e}"))?;
                    let Some(token) = ambient else {
                        bail!(
                            "keyless signing needs an OIDC identity token and none was found: \
                             give --identity-token-file FILE (or --identity-token), set \
                             $SIGSTORE_ID_TOKEN, or run in CI with ambient credentials (GitHub \
                             Actions: `permissions: id-token: write`)"
                        );
                    };
                    return check_token(token, "the CI's ambient credentials");
                }
            },
        };
        let token = IdentityToken::from_jwt(&raw).map_err(|e| {
            anyhow!("{from}: not an OIDC identity token (a JWT: header.payload.signature): {e}")
        })?;
        check_token(token, &from)
    }
}

fn check_token(token: IdentityToken, from: &str) -> Result<IdentityToken> {
    if token.is_expired() {
        bail!(
            "{from}: the identity token for {} (issuer {}) expired at {}; get a fresh one",
            token.identity(),
            token.issuer(),
            token.expiration()
        );
    }
    Ok(token)
}

/// How a manifest is signed through Sigstore.
#[derive(Debug)]
pub enum Method<'a> {
    /// A managed key, its signature published to Rekor.
    KeyWithTlog(&'a dyn measurements::signer::Signer),
    /// An ephemeral key certified by Fulcio for this identity; always published to Rekor.
    Keyless(Box<IdentityToken>),
}

/// What a signing produced, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    /// The certificate's identity (keyless).
    pub identity: Option<String>,
    /// The OIDC issuer (keyless).
    pub issuer: Option<String>,
    pub rekor: String,
    pub log_index: u64,
    pub integrated_time: Option<i64>,
    pub timestamped: bool,
    /// Whether the bundle was verified against the instance's trusted root.
    pub verified: bool,
}

/// The bundle JSON (pretty, final newline) for `manifest`, and what was published.
pub fn sign(
    manifest: &[u8],
    method: &Method<'_>,
    services: &Services,
) -> Result<(Vec<u8>, Published)> {
    let http = sigstore_fulcio::reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("nodeimg/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("setting up the HTTP client")?;
    let rt = runtime()?;
    rt.block_on(sign_async(manifest, method, services, &http))
}

async fn sign_async(
    manifest: &[u8],
    method: &Method<'_>,
    services: &Services,
    http: &sigstore_fulcio::reqwest::Client,
) -> Result<(Vec<u8>, Published)> {
    // Keyless: a fresh P-256 key, certified for the token's identity.
    let ephemeral;
    let (key, material, verifier_pem): (
        &dyn measurements::signer::Signer,
        VerificationMaterialV03,
        String,
    ) = match method {
        Method::KeyWithTlog(key) => {
            let public = VerifyingKey::from_spki_der(&key.public_key_der())?;
            (
                *key,
                VerificationMaterialV03::PublicKey {
                    hint: public.hint(),
                },
                public.to_spki_pem(),
            )
        }
        Method::Keyless(token) => {
            ephemeral = Ephemeral(
                KeyPair::generate_ecdsa_p256()
                    .map_err(|e| anyhow!("generating the ephemeral key: {e}"))?,
            );
            let fulcio = sigstore_fulcio::FulcioClient::builder(&services.fulcio)
                .with_http_client(http.clone())
                .build()
                .map_err(|e| anyhow!("Fulcio at {}: {e}", services.fulcio))?;
            let cert = fulcio
                .create_signing_certificate(token.as_ref(), &ephemeral.0)
                .await
                .map_err(|e| {
                    anyhow!(
                        "Fulcio at {} refused a certificate for {} (issuer {}): {e}",
                        services.fulcio,
                        token.identity(),
                        token.issuer()
                    )
                })?;
            let leaf = cert.leaf_certificate().clone();
            let pem = x509_cert::der::pem::encode_string(
                "CERTIFICATE",
                x509_cert::der::pem::LineEnding::LF,
                leaf.as_bytes(),
            )
            .map_err(|e| anyhow!("the Fulcio certificate as PEM: {e}"))?;
            (&ephemeral, VerificationMaterialV03::Certificate(leaf), pem)
        }
    };

    let envelope = measurements::signing::manifest_envelope(key, manifest)?;
    let signature = B64
        .decode(&envelope.signatures[0].sig)
        .context("the envelope's signature")?;
    let payload = B64
        .decode(&envelope.payload)
        .context("the envelope's payload")?;

    let entry = rekor_intoto(http, &services.rekor, &envelope, &payload, &verifier_pem).await?;
    let log_index = entry.log_index.get();
    let integrated_time = entry.integrated_time.map(|t| t.as_second());

    let sig = SignatureBytes::new(signature);
    let mut bundle = BundleV03::new(
        material,
        SignatureContent::DsseEnvelope(DsseEnvelope::new(
            envelope.payload_type.clone(),
            PayloadBytes::new(payload),
            DsseSignature::new(sig.clone(), KeyId::default()),
        )),
    )
    .with_tlog_entry(entry);
    if let Some(tsa) = &services.tsa {
        let client = sigstore_tsa::TimestampClient::builder(tsa)
            .with_http_client(http.clone())
            .build()
            .map_err(|e| anyhow!("TSA at {tsa}: {e}"))?;
        let ts = client
            .timestamp_signature(&sig)
            .await
            .map_err(|e| anyhow!("TSA at {tsa}: {e}"))?;
        bundle = bundle.with_rfc3161_timestamp(ts);
    }
    let bundle = bundle.into_bundle();
    let mut json = bundle
        .to_json_pretty()
        .map_err(|e| anyhow!("serializing the bundle: {e}"))?
        .into_bytes();
    json.push(b'\n');

    // The token's claims are unverified (and a federated login's issuer is not the token's):
    // report the identity and issuer the certificate carries.
    let (mut identity, mut issuer) = match method {
        Method::Keyless(t) => (Some(t.identity().to_string()), None),
        Method::KeyWithTlog(_) => (None, None),
    };
    let verified = match &services.trusted_root {
        Some(root) => {
            let signer = match method {
                Method::Keyless(_) => verifier::Signer::Identity {
                    identity: verifier::IdentityMatch::Any,
                    issuer: None,
                },
                Method::KeyWithTlog(_) => verifier::Signer::Key {
                    pem: verifier_pem.clone(),
                    require_tlog: true,
                },
            };
            let v = verifier::verify(verifier::Subject::Bytes(manifest), &json, &signer, root)
                .context(
                    "the bundle made with the services' answers does not verify against the \
                     instance's trusted root (wrong --trusted-root, or a misbehaving service)",
                )?;
            (identity, issuer) = (v.identity.or(identity), v.issuer);
            true
        }
        None => {
            tracing::warn!(
                "no trusted root for this Sigstore instance: the bundle was not verified after \
                 signing (give --trusted-root)"
            );
            false
        }
    };
    Ok((
        json,
        Published {
            identity,
            issuer,
            rekor: services.rekor.clone(),
            log_index,
            integrated_time,
            timestamped: services.tsa.is_some(),
            verified,
        },
    ))
}

/// The ephemeral keyless key behind the signer interface (ECDSA P-256, SHA-256, DER).
struct Ephemeral(KeyPair);

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ephemeral(P-256)")
    }
}

impl measurements::signer::Signer for Ephemeral {
    fn scheme(&self) -> measurements::signer::Scheme {
        measurements::signer::Scheme::EcdsaP256Sha256
    }
    fn public_key_der(&self) -> Vec<u8> {
        self.0
            .public_key_der()
            .map(|k| k.as_bytes().to_vec())
            .unwrap_or_default()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, measurements::signer::SignerError> {
        self.0
            .sign(message)
            .map(|s| s.as_bytes().to_vec())
            .map_err(|e| measurements::signer::SignerError::Sign {
                signer: self.describe(),
                why: e.to_string(),
            })
    }
    fn describe(&self) -> String {
        "an ephemeral P-256 key (keyless)".into()
    }
}

/// Proposes an `intoto` v0.0.2 entry for `envelope` (one signature; `verifier` the PEM
/// certificate or public key) and returns it as bundle verification material.
///
/// Rekor's intoto v0.0.2 form: payload and signature each base64-encoded once more (the
/// envelope is stored as Go marshals it), the verifier as base64 of its PEM, plus the SHA-256
/// of the payload and of the canonical JSON envelope as Rekor recomputes it.
async fn rekor_intoto(
    http: &sigstore_fulcio::reqwest::Client,
    rekor: &str,
    envelope: &dsse::Envelope,
    payload: &[u8],
    verifier: &str,
) -> Result<TransparencyLogEntry> {
    use sha2::{Digest, Sha256};
    let sig = &envelope.signatures[0].sig;
    // RFC 8785 canonical JSON of {payload, payloadType, signatures: [{publicKey, sig}]}: keys
    // sorted, no whitespace; serde_json escapes exactly what JCS escapes for these strings.
    let canonical = format!(
        "{{\"payload\":{},\"payloadType\":{},\"signatures\":[{{\"publicKey\":{},\"sig\":{}}}]}}",
        serde_json::to_string(&envelope.payload)?,
        serde_json::to_string(&envelope.payload_type)?,
        serde_json::to_string(verifier)?,
        serde_json::to_string(sig)?,
    );
    let proposed = serde_json::json!({
        "apiVersion": "0.0.2",
        "kind": "intoto",
        "spec": { "content": {
            "envelope": {
                "payloadType": envelope.payload_type,
                "payload": B64.encode(&envelope.payload),
                "signatures": [{ "sig": B64.encode(sig), "publicKey": B64.encode(verifier) }],
            },
            "hash": { "algorithm": "sha256", "value": hex::encode(Sha256::digest(canonical)) },
            "payloadHash": { "algorithm": "sha256", "value": hex::encode(Sha256::digest(payload)) },
        }},
    });
    let url = format!("{rekor}/api/v1/log/entries");
    let mut response = http
        .post(&url)
        .json(&proposed)
        .send()
        .await
        .map_err(|e| anyhow!("Rekor at {rekor}: {e}"))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow!("Rekor at {rekor}: reading the answer: {e}"))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > REKOR_RESPONSE_MAX {
            bail!("Rekor at {rekor}: the answer exceeds {REKOR_RESPONSE_MAX} bytes");
        }
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
        bail!(
            "Rekor at {rekor} refused the entry ({status}): {}",
            text.trim()
        );
    }
    let entries: std::collections::HashMap<String, sigstore_rekor::LogEntry> =
        serde_json::from_slice(&body)
            .map_err(|e| anyhow!("Rekor at {rekor}: not a log entry answer: {e}"))?;
    let [(_uuid, entry)]: [(String, sigstore_rekor::LogEntry); 1] = entries
        .into_iter()
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|v: Vec<_>| {
            anyhow!("Rekor at {rekor}: {} entries in the answer, not 1", v.len())
        })?;
    entry
        .to_bundle_entry(KindVersion::IntotoV002)
        .map_err(|e| anyhow!("Rekor at {rekor}: {e}"))
}

/// A single-threaded runtime for the service calls (nodeimg is otherwise synchronous).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime for the Sigstore services")
}
