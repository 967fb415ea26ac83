//! `nodeimg verify`: every check is run and reported on its own line (or JSON object), and
//! the command succeeds only if none failed. The order matters: nothing after `signature`
//! is trusted unless the signature verified, so a failed `bundle`, `signature` or
//! `manifest` check skips the rest.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use measurements::signing::verify::{self as checks, Signed};
use measurements::signing::{Bundle, ManifestDoc, Statement, VerifyingKey};
use serde::Serialize;
use serde_json::Value;

use crate::qemu::ObservedPcrs;

/// What to verify.
#[derive(Debug, Clone)]
pub struct Request {
    pub manifest: PathBuf,
    pub bundle: PathBuf,
    /// The pinned public key (SPKI PEM), for a managed-key bundle.
    pub key: Option<PathBuf>,
    /// The required certificate identity and OIDC issuer, for a keyless bundle.
    pub identity: Option<super::sigstore::IdentityPolicy>,
    /// A trusted root for Sigstore material (default: the embedded public-good one).
    pub trusted_root: Option<PathBuf>,
    /// Use the embedded staging trusted root.
    pub staging: bool,
    /// A disk image: its SHA-256 is compared, and PCRs are recomputed from it.
    pub image: Option<PathBuf>,
    /// A TCG2 event log to replay against the signed events.
    pub event_log: Option<PathBuf>,
    /// A TDX CC event log to replay against the signed RTMRs.
    pub ccel: Option<PathBuf>,
    /// Observed PCRs (JSON `{"sha256":{"4":"…"}}`, or `nodeimg boot --json` output).
    pub pcrs: Option<PathBuf>,
    /// With a managed key: the bundle must carry a transparency-log entry that verifies
    /// (keyless bundles always must).
    pub require_tlog: bool,
    /// A TPM quote to check against the signed manifest.
    pub quote: Option<QuoteFiles>,
    /// An SEV-SNP attestation report to check against the signed manifest.
    pub snp: Option<SnpFiles>,
    /// An SEV-SNP ID block / ID auth pair and pinned ID / author keys.
    pub snp_id: SnpIdFiles,
    /// What besides the nodeimg in-toto statement is accepted.
    pub policy: measurements::signing::verify::Policy,
}

/// A TPM quote as `tpm2_quote -m MSG -s SIG` writes it, the AK public key
/// (`tpm2_readpublic -f pem`) and the nonce the verifier sent.
#[derive(Debug, Clone)]
pub struct QuoteFiles {
    pub message: PathBuf,
    pub signature: PathBuf,
    pub ak: PathBuf,
    pub nonce: Vec<u8>,
}

/// An SEV-SNP attestation report, its VCEK (DER), optionally the ARK and ASK (PEM), and the
/// nonce the verifier asked to be put in REPORT_DATA.
#[derive(Debug, Clone)]
pub struct SnpFiles {
    pub report: PathBuf,
    pub vcek: PathBuf,
    pub ark_ask: Option<(PathBuf, PathBuf)>,
    pub nonce: Vec<u8>,
}

/// An ID block and ID auth (raw or base64) to check against the signed manifest, and the
/// pinned ID and author public keys (SPKI PEM). Without a pair, the manifest's own ID blocks
/// are checked (against the pins, when given).
#[derive(Debug, Clone, Default)]
pub struct SnpIdFiles {
    pub pair: Option<(PathBuf, PathBuf)>,
    pub id_key: Option<PathBuf>,
    pub author_key: Option<PathBuf>,
}

/// The report lines: the same type as the evidence checks of `measurements::attest` return.
pub use measurements::attest::{Check, Status};

/// The whole report; `ok` only if no check failed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    /// The pinned key (managed-key bundles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyInfo>,
    /// The required signer identity (keyless bundles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityInfo>,
    pub checks: Vec<Check>,
}

/// The keyless policy, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityInfo {
    pub identity: String,
    pub issuer: String,
}

/// The pinned key, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub algorithm: String,
    pub hint: String,
}

#[derive(Debug, Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn record<T>(&mut self, check: &'static str, r: Result<(T, String)>) -> Option<T> {
        let (status, detail, value) = match r {
            Ok((v, detail)) => (Status::Ok, detail, Some(v)),
            Err(e) => (Status::Failed, format!("{e:#}"), None),
        };
        self.0.push(Check {
            check,
            status,
            detail,
        });
        value
    }

    fn skip(&mut self, check: &'static str, why: &str) {
        self.0.push(Check {
            check,
            status: Status::Skipped,
            detail: why.to_string(),
        });
    }
}

/// Runs every check. `Err` only when an input file cannot be read; verification failures
/// are in the report.
pub fn verify(req: &Request) -> Result<Report> {
    let key = req.key.as_deref().map(super::read_public_key).transpose()?;
    use crate::infile::{read_capped, BUNDLE_MAX, MANIFEST_MAX};
    let manifest = read_capped(&req.manifest, MANIFEST_MAX, "manifest")?;
    let bundle = read_capped(&req.bundle, BUNDLE_MAX, "bundle")?;
    let mut c = Checks::default();
    let doc = match (
        &key,
        has_sigstore_material(&bundle) || req.identity.is_some() || req.require_tlog,
    ) {
        (Some(key), false) => signed_manifest(&mut c, key, &bundle, &manifest, req.policy),
        (None, false) => anyhow::bail!(
            "a bundle without a certificate or transparency-log entry needs the signer's \
             public key (--key)"
        ),
        (_, true) => sigstore_manifest(&mut c, req, &bundle, &manifest)?,
    };
    match &doc {
        Some(doc) => optional_checks(&mut c, req, doc)?,
        None => {
            for (name, given) in [
                ("image", req.image.is_some()),
                ("event-log", req.event_log.is_some()),
                ("ccel", req.ccel.is_some()),
                ("pcrs", req.pcrs.is_some()),
                ("snp-id-block", req.snp_id.pair.is_some()),
            ] {
                if given {
                    c.skip(
                        name,
                        "not checked: the manifest is not verified as the signed one",
                    );
                }
            }
        }
    }
    Ok(Report {
        ok: c.0.iter().all(|x| x.status != Status::Failed),
        key: key.map(|key| KeyInfo {
            algorithm: key.algorithm().to_string(),
            hint: key.hint(),
        }),
        identity: req.identity.clone().map(|p| IdentityInfo {
            identity: p.identity_text(),
            issuer: p.issuer,
        }),
        checks: c.0,
    })
}

/// Whether the bundle carries material only Sigstore's verifier checks: a certificate, a
/// transparency-log entry or an RFC 3161 timestamp.
fn has_sigstore_material(bundle: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bundle) else {
        return false;
    };
    let m = &v["verificationMaterial"];
    let nonempty = |x: &serde_json::Value| match x {
        serde_json::Value::Null => false,
        serde_json::Value::Array(a) => !a.is_empty(),
        _ => true,
    };
    nonempty(&m["certificate"])
        || nonempty(&m["x509CertificateChain"])
        || nonempty(&m["tlogEntries"])
        || nonempty(&m["timestampVerificationData"]["rfc3161Timestamps"])
}

/// A bundle with Sigstore material: Sigstore's verifier checks the signature, certificate,
/// identity, tlog entry and timestamps over manifest.json; then the statement checks.
fn sigstore_manifest(
    c: &mut Checks,
    req: &Request,
    bundle: &[u8],
    manifest: &[u8],
) -> Result<Option<ManifestDoc>> {
    use super::sigstore::{self, Signer, Subject};
    let signer = Signer::from_options(req.key.as_deref(), req.identity.clone(), true)?;
    let root = sigstore::trusted_root(req.trusted_root.as_deref(), req.staging)?;
    let value: Option<serde_json::Value> = c.record(
        "bundle",
        serde_json::from_slice::<serde_json::Value>(bundle)
            .map_err(|e| anyhow::anyhow!("not JSON: {e}"))
            .map(|v| {
                let what = format!(
                    "{} with Sigstore material (certificate / tlog entry / timestamp)",
                    v["mediaType"].as_str().unwrap_or("(no mediaType)")
                );
                (v, what)
            }),
    );
    let Some(value) = value else { return Ok(None) };
    let is_dsse = value.get("dsseEnvelope").is_some();
    if !is_dsse && !req.policy.allow_message_signature {
        c.record::<()>(
            "signature",
            Err(measurements::signing::Error::MessageSignatureNotAllowed.into()),
        );
        return Ok(None);
    }
    let verified = c.record(
        "signature",
        sigstore::verify(Subject::Bytes(manifest), bundle, &signer, &root).map(|v| {
            let who = match (&v.identity, &v.issuer) {
                (Some(i), Some(o)) => {
                    format!("certificate for {i} (issuer {o}) chained to the trusted root")
                }
                _ => "the pinned key".to_string(),
            };
            ((), format!("{who}{}", v.log_summary()))
        }),
    );
    if verified.is_none() {
        return Ok(None);
    }
    let doc = manifest_check(c, manifest);
    let Some(doc) = doc else { return Ok(None) };
    if !is_dsse {
        c.skip(
            "subjects",
            "a message signature covers manifest.json's bytes directly",
        );
        c.skip("predicate", "a message signature has no predicate");
        return Ok(Some(doc));
    }
    let statement = c.record(
        "statement",
        dsse_statement(&value).map(|st| {
            (
                st,
                "an in-toto statement with nodeimg's predicate type".to_string(),
            )
        }),
    );
    let Some(st) = statement else { return Ok(None) };
    Ok(statement_checks(c, &st, &doc).map(|()| doc))
}

/// The in-toto statement of a bundle's DSSE envelope (its signature was verified by Sigstore).
fn dsse_statement(bundle: &serde_json::Value) -> Result<Statement> {
    use base64::Engine;
    let env = &bundle["dsseEnvelope"];
    let payload_type = env["payloadType"].as_str().unwrap_or("");
    anyhow::ensure!(
        payload_type == measurements::signing::dsse::INTOTO_PAYLOAD_TYPE,
        "DSSE payloadType {payload_type:?} is not in-toto"
    );
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env["payload"].as_str().unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("DSSE payload is not base64: {e}"))?;
    Ok(Statement::parse(&payload)?)
}

/// bundle → signature → manifest → subjects → predicate. `Some` once the manifest is known
/// to be what the key holder signed; the later checks are skipped otherwise.
fn signed_manifest(
    c: &mut Checks,
    key: &VerifyingKey,
    bundle: &[u8],
    manifest: &[u8],
    policy: measurements::signing::verify::Policy,
) -> Option<ManifestDoc> {
    let parsed = c.record(
        "bundle",
        Bundle::parse(bundle).map_err(Into::into).map(|b| {
            let what = match (&b.dsse_envelope, &b.media_type) {
                (Some(_), m) => format!("{m} with a DSSE envelope"),
                (None, m) => format!("{m} with a message signature"),
            };
            (b, what)
        }),
    )?;
    let signed = c.record(
        "signature",
        checks::check_signature(&parsed, key, manifest, policy)
            .map_err(Into::into)
            .map(|s| {
                let over = match &s {
                    Signed::Statement(_) => "an in-toto statement (DSSE)",
                    Signed::Manifest => "manifest.json itself",
                };
                (
                    s,
                    format!("{} key {} signed {over}", key.algorithm(), key.hint()),
                )
            }),
    )?;
    let doc = manifest_check(c, manifest)?;
    let Signed::Statement(st) = &signed else {
        c.skip(
            "subjects",
            "a message signature covers manifest.json's bytes directly",
        );
        c.skip("predicate", "a message signature has no predicate");
        return Some(doc);
    };
    statement_checks(c, st, &doc).map(|()| doc)
}

/// The `manifest` check: the manifest parses; `Some` with it.
fn manifest_check(c: &mut Checks, manifest: &[u8]) -> Option<ManifestDoc> {
    c.record(
        "manifest",
        ManifestDoc::parse(manifest).map_err(Into::into).map(|d| {
            let n = d.artifacts.len();
            (
                d.clone(),
                format!("sha256:{} lists {n} artifacts", d.sha256),
            )
        }),
    )
}

/// subjects and predicate of a verified statement; `Some` if both hold.
fn statement_checks(c: &mut Checks, st: &Statement, doc: &ManifestDoc) -> Option<()> {
    let subjects = c.record(
        "subjects",
        checks::check_subjects(st, doc)
            .map_err(Into::into)
            .map(|r| {
                let mut d = format!("match: {}", r.matched.join(", "));
                if !r.not_listed.is_empty() {
                    d += &format!(
                        " (not listed, bound through manifest.json: {})",
                        r.not_listed.join(", ")
                    );
                }
                ((), d)
            }),
    );
    let predicate = c.record(
        "predicate",
        checks::check_predicate(st, doc)
            .map_err(Into::into)
            .map(|()| ((), "equals manifest.json".to_string())),
    );
    subjects.and(predicate)
}

/// `--image`, `--event-log`, `--pcrs`.
fn optional_checks(c: &mut Checks, req: &Request, doc: &ManifestDoc) -> Result<()> {
    if let Some(image) = &req.image {
        let actual = hex::encode(
            super::sha256_file(image).with_context(|| format!("hashing {}", image.display()))?,
        );
        // disk.raw, or one of the other formats the build wrote (disk.qcow2, disk.vhd, …).
        let other = crate::formats::ALL
            .iter()
            .map(|f| f.file_name())
            .find(|n| checks::check_artifact(doc, n, &actual).is_ok());
        if let Some(name) = other {
            c.record(
                "image",
                Ok((
                    (),
                    format!("{} is the signed {name} (sha256:{actual})", image.display()),
                )),
            );
            c.skip(
                "image-pcrs",
                &format!(
                    "recomputed from disk.raw only ({name} is a container of the same disk: give \
                     disk.raw to recompute the PCRs)"
                ),
            );
            return optional_evidence_checks(c, req, doc);
        }
        c.record(
            "image",
            checks::check_artifact(doc, "disk.raw", &actual)
                .map_err(Into::into)
                .map(|()| {
                    (
                        (),
                        format!(
                            "{} is the signed disk.raw (sha256:{actual})",
                            image.display()
                        ),
                    )
                }),
        );
        if has_measurements(&doc.value) {
            c.record(
                "image-pcrs",
                compare_measured(image, &doc.value).map(|d| ((), d)),
            );
        } else {
            c.skip(
                "image-pcrs",
                "the manifest has no pcrs, pcr11_phases or events",
            );
        }
    }
    optional_evidence_checks(c, req, doc)
}

/// The checks of evidence and observations (quote, SNP report, event log, PCR file).
fn optional_evidence_checks(c: &mut Checks, req: &Request, doc: &ManifestDoc) -> Result<()> {
    if let Some(q) = &req.quote {
        quote_checks(c, q, req.event_log.as_deref(), doc)?;
    }
    if let Some(r) = &req.snp {
        snp_checks(c, r, doc)?;
    }
    super::snp_id::checks(&mut c.0, &req.snp_id, &doc.value)?;
    if let Some(log) = &req.event_log {
        let bytes = crate::infile::read_capped(log, crate::infile::EVENT_LOG_MAX, "event log")?;
        c.record(
            "event-log",
            replay_event_log(&bytes, &doc.value).map(|d| ((), d)),
        );
    }
    if let Some(log) = &req.ccel {
        let bytes = crate::infile::read_capped(log, crate::infile::EVENT_LOG_MAX, "CC event log")?;
        c.record("ccel", replay_ccel(&bytes, &doc.value).map(|d| ((), d)));
    }
    if let Some(p) = &req.pcrs {
        let text = String::from_utf8(crate::infile::read_capped(
            p,
            crate::infile::PCRS_MAX,
            "PCR file",
        )?)
        .with_context(|| format!("{} is not UTF-8 text", p.display()))?;
        c.record(
            "pcrs",
            compare_observed(&text, &doc.value)
                .with_context(|| format!("--pcrs {}", p.display()))
                .map(|d| ((), d)),
        );
    }
    Ok(())
}

/// The quote checks of `measurements::attest` (the library entry point an attestation service
/// links), one report line each.
fn quote_checks(
    c: &mut Checks,
    q: &QuoteFiles,
    log: Option<&Path>,
    doc: &ManifestDoc,
) -> Result<()> {
    use crate::infile::read_capped;
    let message = read_capped(&q.message, QUOTE_MAX, "quote message (TPMS_ATTEST)")?;
    let signature = read_capped(&q.signature, QUOTE_MAX, "quote signature (TPMT_SIGNATURE)")?;
    let ak_pem = read_capped(&q.ak, crate::infile::KEY_MAX, "attestation key")?;
    let ak = measurements::attest::AkKey::spki_der_from_pem(&ak_pem)
        .with_context(|| format!("--ak {}", q.ak.display()))?;
    let log = log
        .map(|l| read_capped(l, crate::infile::EVENT_LOG_MAX, "event log"))
        .transpose()?;
    let manifest: measurements::attest::ReferenceValues = serde_json::from_value(doc.value.clone())
        .context("the signed manifest's pcrs or events are malformed")?;
    let evidence = measurements::attest::TpmEvidence {
        attest: &message,
        signature: &signature,
        ak_spki_der: &ak,
        nonce: &q.nonce,
        event_log: log.as_deref(),
    };
    c.0.extend(measurements::attest::verify_tpm_quote(&evidence, &manifest));
    Ok(())
}

/// The SEV-SNP report checks of `measurements::attest`, one report line each.
fn snp_checks(c: &mut Checks, r: &SnpFiles, doc: &ManifestDoc) -> Result<()> {
    use crate::infile::read_capped;
    let report = read_capped(&r.report, QUOTE_MAX, "SEV-SNP attestation report")?;
    let vcek = read_capped(&r.vcek, crate::infile::KEY_MAX, "VCEK certificate")?;
    let ca = match &r.ark_ask {
        Some((ark, ask)) => Some((
            read_capped(ark, crate::infile::KEY_MAX, "ARK certificate")?,
            read_capped(ask, crate::infile::KEY_MAX, "ASK certificate")?,
        )),
        None => None,
    };
    let reference: measurements::attest::SnpReference =
        serde_json::from_value(doc.value.clone())
            .context("the signed manifest's snp entries are malformed")?;
    let evidence = measurements::attest::SnpEvidence {
        report: &report,
        vcek_der: &vcek,
        ca_pem: ca.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice())),
        nonce: &r.nonce,
    };
    c.0.extend(measurements::attest::verify_snp_report(
        &evidence, &reference,
    ));
    Ok(())
}

/// A quote message or signature is a few hundred bytes.
const QUOTE_MAX: u64 = 64 << 10;

/// The manifest keys a measurement of the disk reproduces.
const MEASURED_KEYS: [&str; 3] = ["pcrs", "pcr11_phases", "events"];

fn has_measurements(manifest: &Value) -> bool {
    MEASURED_KEYS.iter().any(|k| manifest.get(k).is_some())
}

/// Recomputes the measurements from the disk and compares every key the measurement
/// produced with the signed manifest's.
fn compare_measured(image: &Path, manifest: &Value) -> Result<String> {
    let measured = measure_image(image, manifest)?;
    let mut compared = Vec::new();
    for key in MEASURED_KEYS {
        let (Some(signed), Some(found)) = (manifest.get(key), measured.get(key)) else {
            continue;
        };
        if let Some(d) = checks::first_difference(signed, found) {
            bail!(
                "{key}.{}: the signed manifest has {}, the image measures {}",
                d.path,
                d.left,
                d.right
            );
        }
        compared.push(key);
    }
    anyhow::ensure!(
        !compared.is_empty(),
        "the measurement of the image produced none of {MEASURED_KEYS:?}"
    );
    Ok(format!(
        "recomputed from the image: {} equal",
        compared.join(", ")
    ))
}

/// The signed manifest's PCR banks (both when it names none).
fn manifest_banks(manifest: &Value) -> Vec<image_config::Bank> {
    let named: Vec<image_config::Bank> = manifest
        .get("pcrs")
        .and_then(Value::as_object)
        .map(|o| {
            o.keys()
                .filter_map(|k| serde_json::from_value(Value::String(k.clone())).ok())
                .collect()
        })
        .unwrap_or_default();
    if named.is_empty() {
        vec![image_config::Bank::Sha256, image_config::Bank::Sha384]
    } else {
        named
    }
}

/// The measurement of a disk image as a JSON object with the manifest's `pcrs`,
/// `pcr11_phases` and `events` keys — what `nodeimg measure disk --json` prints — in the
/// banks the signed manifest uses.
fn measure_image(image: &Path, manifest: &Value) -> Result<Value> {
    let disk = crate::measure::uki_from_disk(image)?;
    let sb: Option<measurements::manifest::SecureBoot> = match manifest.get("secure_boot") {
        Some(v) => Some(serde_json::from_value(v.clone()).context("manifest secure_boot")?),
        None => None,
    };
    let sb = crate::measure::secure_boot_of(sb.as_ref())?;
    // The PCRs the signed manifest lists (a manifest of an older nodeimg has no PCR 5): the
    // signature covers exactly those, and the image must reproduce each.
    let pcrs: Vec<u32> = manifest
        .get("pcrs")
        .and_then(Value::as_object)
        .and_then(|banks| banks.values().next())
        .and_then(Value::as_object)
        .map(|v| v.keys().filter_map(|k| k.parse().ok()).collect())
        .filter(|v: &Vec<u32>| !v.is_empty())
        .unwrap_or_else(|| measurements::pcr::PREDICTED_PCRS.to_vec());
    let opts = measurements::pcr::Options {
        banks: manifest_banks(manifest)
            .into_iter()
            .map(crate::measure::bank)
            .collect(),
        secure_boot: sb,
        gpt: Some(disk.gpt),
        pcrs,
        ..Default::default()
    };
    let p = crate::measure::predict_with(&disk.uki, &opts)?;
    Ok(serde_json::to_value(&p)?)
}

/// Replays a TCG2 event log and checks that it reproduces every signed PCR value; on a
/// mismatch names the first event that departs from the signed `events`.
fn replay_event_log(log: &[u8], manifest: &Value) -> Result<String> {
    use measurements::eventlog::{first_divergence, EventLog};
    use measurements::pcr::Bank;
    let log = EventLog::parse(log).context("parsing the event log")?;
    let signed = manifest
        .get("pcrs")
        .and_then(Value::as_object)
        .context("the signed manifest has no pcrs")?;
    let events: Vec<measurements::manifest::Event> = serde_json::from_value(
        manifest
            .get("events")
            .cloned()
            .unwrap_or(Value::Array(vec![])),
    )
    .context("the signed manifest's events are malformed")?;
    let expected = crate::qemu::attest::expected_events(&events);
    let mut checked = 0;
    for (bank_name, values) in signed {
        let bank = Bank::from_name(bank_name)
            .with_context(|| format!("unknown bank `{bank_name}` in the manifest"))?;
        let replayed = log.replay(bank).context("replaying the event log")?;
        for (pcr, want) in values.as_object().into_iter().flatten() {
            let pcr: u32 = pcr
                .parse()
                .with_context(|| format!("PCR key `{pcr}` is not a number"))?;
            let got = replayed.get(&pcr).copied().unwrap_or(bank.zero()).to_hex();
            if Some(got.as_str()) != want.as_str() {
                let why = first_divergence(&log, &expected, pcr, bank).map_or_else(
                    || "its events equal the signed `events`".to_string(),
                    |d| d.describe(pcr, bank),
                );
                bail!("the event log replays {bank_name} PCR {pcr} to {got}, the manifest signs {want}; first difference: {why}");
            }
            checked += 1;
        }
    }
    Ok(format!(
        "the event log ({} events) replays to all {checked} signed PCR values",
        log.events.len()
    ))
}

/// Replays a TDX CC event log (SHA-384, CC MR index = RTMR + 1) against the RTMRs of the
/// signed `tdx` entries: accepted when it reproduces RTMR 1–3 of one of them (RTMR0 is the
/// platform's); otherwise names the first event that departs from the closest entry's events.
fn replay_ccel(log: &[u8], manifest: &Value) -> Result<String> {
    use measurements::eventlog::{first_divergence, EventLog};
    use measurements::pcr::{Bank, Digest, EventType};
    let log = EventLog::parse_cc(log).context("parsing the CC event log")?;
    let entries: Vec<measurements::manifest::TdxEntry> =
        serde_json::from_value(manifest.get("tdx").cloned().unwrap_or(Value::Array(vec![])))
            .context("the signed manifest's tdx entries are malformed")?;
    let replayed = log
        .replay(Bank::Sha384)
        .context("replaying the CC event log")?;
    let got = |rtmr: u32| {
        replayed
            .get(&(rtmr + 1))
            .copied()
            .unwrap_or(Bank::Sha384.zero())
            .to_hex()
    };
    let mut closest: Option<(usize, String)> = None;
    for (i, e) in entries.iter().enumerate() {
        let Some(r) = &e.rtmrs else { continue };
        let wrong: Vec<&String> = r
            .values
            .iter()
            .filter(|(k, v)| k.parse::<u32>().map_or(true, |k| got(k) != **v))
            .map(|(k, _)| k)
            .collect();
        if wrong.is_empty() {
            return Ok(format!(
                "the CC event log ({} events) replays to RTMR {} of tdx[{i}] ({}, Secure Boot {}); RTMR0 {} is the platform's",
                log.events.len(),
                r.values.keys().cloned().collect::<Vec<_>>().join(", "),
                r.edk2,
                if r.secure_boot { "on" } else { "off" },
                got(0)
            ));
        }
        let rtmr: u32 = wrong[0].parse().unwrap_or(1);
        let expected: Vec<measurements::pcr::Event> = r
            .events
            .iter()
            .filter_map(|c| {
                let digest = Digest::from_hex(Bank::Sha384, &c.sha384)?;
                Some(measurements::pcr::Event {
                    pcr: c.rtmr + 1,
                    event_type: EventType::from_name(&c.event_type)?,
                    description: c.description.clone(),
                    digests: [(Bank::Sha384, digest)].into(),
                })
            })
            .collect();
        let why = first_divergence(&log, &expected, rtmr + 1, Bank::Sha384).map_or_else(
            || "its events equal the signed events".to_string(),
            |d| d.describe_register(&format!("RTMR{rtmr}"), Bank::Sha384),
        );
        let msg = format!(
            "tdx[{i}] ({}): the log replays RTMR{rtmr} to {}, the manifest signs {}; first difference: {why}",
            r.edk2,
            got(rtmr),
            r.values[wrong[0]]
        );
        if closest.as_ref().is_none_or(|(n, _)| wrong.len() < *n) {
            closest = Some((wrong.len(), msg));
        }
    }
    match closest {
        Some((_, msg)) => bail!("{msg}"),
        None => {
            bail!("the signed manifest has no tdx entry with RTMRs (build with [measurements.tdx])")
        }
    }
}

/// Compares observed PCRs (a `{"<bank>":{"<pcr>":"<hex>"}}` object, or an object with such a
/// `pcrs` member, as `nodeimg boot --json` prints) with the signed `pcrs`. PCR 11 may also
/// equal a signed `pcr11_phases` value (a later boot phase).
fn compare_observed(text: &str, manifest: &Value) -> Result<String> {
    let v: Value = serde_json::from_str(text).context("not JSON")?;
    let obj = v.get("pcrs").unwrap_or(&v);
    let observed = ObservedPcrs::parse_json(&obj.to_string())?;
    let signed = manifest
        .get("pcrs")
        .and_then(Value::as_object)
        .context("the signed manifest has no pcrs to compare with")?;
    let mut problems = Vec::new();
    let mut matched = Vec::new();
    for (bank, expected) in signed {
        let (Some(expected), Some(seen)) = (expected.as_object(), observed.0.get(bank)) else {
            continue;
        };
        let mut expected: Vec<_> = expected.iter().collect();
        expected.sort_by_key(|(index, _)| index.parse::<u32>().unwrap_or(u32::MAX));
        for (index, want) in expected {
            let want = want.as_str().unwrap_or_default();
            let got = index.parse().ok().and_then(|i: u32| seen.get(&i));
            match got {
                None => problems.push(format!("{bank}:{index} is not in the file")),
                Some(g) if g.eq_ignore_ascii_case(want) => matched.push(format!("{bank}:{index}")),
                Some(g) => match phase_of(manifest, bank, index, g) {
                    Some(phase) => matched.push(format!("{bank}:{index} (after {phase})")),
                    None => problems.push(format!(
                        "{bank}:{index} is {g}, the signed manifest expects {want}"
                    )),
                },
            }
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    anyhow::ensure!(
        !matched.is_empty(),
        "no bank in common with the signed pcrs"
    );
    Ok(format!(
        "{} PCRs equal: {}",
        matched.len(),
        matched.join(" ")
    ))
}

/// The `pcr11_phases` entry whose value is `value`, for PCR 11.
fn phase_of(manifest: &Value, bank: &str, index: &str, value: &str) -> Option<String> {
    if index != "11" {
        return None;
    }
    manifest
        .get("pcr11_phases")?
        .get(bank)?
        .as_object()?
        .iter()
        .find(|(_, v)| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(value)))
        .map(|(phase, _)| phase.clone())
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
