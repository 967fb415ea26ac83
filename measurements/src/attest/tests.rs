//! The library entry point with a real event log: a quote over PCRs 0–7 of the fixture image's
//! OVMF + swtpm boot (stub 257), signed here with a test key, against manifests pinning the
//! boot's PCR 4 and 7 (right and wrong).

use super::*;

const LOG: &[u8] = include_bytes!("../../../fixtures/eventlog/ovmf-stub257.bin");
const PCRS: &str = include_str!("../../../fixtures/eventlog/ovmf-stub257.pcrs.json");

fn observed() -> BTreeMap<(Bank, u32), Digest> {
    let raw: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(PCRS).unwrap();
    let mut out = BTreeMap::new();
    for (b, v) in raw {
        let bank = Bank::from_name(&b).unwrap();
        for (k, hex) in v {
            out.insert(
                (bank, k.parse().unwrap()),
                Digest::from_hex(bank, &hex).unwrap(),
            );
        }
    }
    out
}

/// TPMS_ATTEST over sha256 PCRs `pcrs` holding `values`, its ECDSA TPMT_SIGNATURE and the AK.
fn quote(
    nonce: &[u8],
    pcrs: &[u32],
    values: &BTreeMap<(Bank, u32), Digest>,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    use p256::ecdsa::signature::Signer;
    use spki::EncodePublicKey;
    let mut digest = Bank::Sha256.hasher();
    for p in pcrs {
        digest.update(values[&(Bank::Sha256, *p)].as_bytes());
    }
    let digest = digest.finish();
    let mut m = Vec::new();
    m.extend(tpm::TPM_GENERATED.to_be_bytes());
    m.extend(tpm::ST_ATTEST_QUOTE.to_be_bytes());
    m.extend(0u16.to_be_bytes());
    m.extend((nonce.len() as u16).to_be_bytes());
    m.extend(nonce);
    m.extend([0u8; 17]);
    m.extend(0u64.to_be_bytes());
    m.extend(1u32.to_be_bytes());
    m.extend(0x000bu16.to_be_bytes());
    m.push(3);
    let mut bits = [0u8; 3];
    for p in pcrs {
        bits[(*p / 8) as usize] |= 1 << (p % 8);
    }
    m.extend(bits);
    m.extend(32u16.to_be_bytes());
    m.extend(digest.as_bytes());
    let key = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    let sig: p256::ecdsa::Signature = key.sign(&m);
    let (r, s) = sig.split_bytes();
    let mut sv = vec![0x00, 0x18, 0x00, 0x0b, 0x00, 0x20];
    sv.extend(r.as_slice());
    sv.extend([0x00, 0x20]);
    sv.extend(s.as_slice());
    let ak = key.verifying_key().to_public_key_der().unwrap().into_vec();
    (m, sv, ak)
}

fn manifest(pcr4: &str, pcr7: &str) -> ReferenceValues {
    serde_json::from_value(serde_json::json!({
        "schema": "nodeimg.manifest/v1",
        "image": {"name": "n", "version": "1", "source_date_epoch": 0},
        "artifacts": {},
        "pcrs": {"sha256": {"4": pcr4, "7": pcr7}},
        "events": [],
    }))
    .unwrap()
}

fn by_name(checks: &[Check]) -> BTreeMap<&'static str, (Status, String)> {
    checks
        .iter()
        .map(|c| (c.check, (c.status, c.detail.clone())))
        .collect()
}

#[test]
fn a_quote_with_platform_pcrs_verifies_through_the_event_log() {
    let values = observed();
    let pcrs = [0, 1, 2, 3, 4, 5, 6, 7];
    let (m, s, ak) = quote(b"fresh", &pcrs, &values);
    let v4 = values[&(Bank::Sha256, 4)].to_hex();
    let v7 = values[&(Bank::Sha256, 7)].to_hex();
    let ev = |log: Option<&'static [u8]>| TpmEvidence {
        attest: &m,
        signature: &s,
        ak_spki_der: &ak,
        nonce: b"fresh",
        event_log: log,
    };

    let ok = verify_tpm_quote(&ev(Some(LOG)), &manifest(&v4, &v7));
    assert!(ok.iter().all(|c| c.status == Status::Ok), "{ok:#?}");

    // Without the log the platform PCRs 0-3, 5, 6 cannot be accounted for.
    let r = by_name(&verify_tpm_quote(&ev(None), &manifest(&v4, &v7)));
    assert_eq!(r["quote-pcrs"].0, Status::Failed);
    assert!(r["quote-pcrs"].1.contains("PCR 0"), "{r:#?}");

    // A manifest for another image: the replayed PCR 4 differs and the event is named.
    let r = by_name(&verify_tpm_quote(
        &ev(Some(LOG)),
        &manifest(&"00".repeat(32), &v7),
    ));
    assert_eq!(r["quote-event-log"].0, Status::Ok);
    assert_eq!(r["quote-pcrs"].0, Status::Failed);
    assert!(r["quote-pcrs"].1.contains("sha256 PCR 4"), "{r:#?}");

    // A log that is not this boot's (one byte of an event digest changed).
    let mut edited = LOG.to_vec();
    let log = EventLog::parse(LOG).unwrap();
    let pcr4 = log
        .measurements(4)
        .next()
        .unwrap()
        .digest(Bank::Sha256)
        .unwrap();
    let at = edited
        .windows(32)
        .position(|w| w == pcr4.as_bytes())
        .unwrap();
    edited[at] ^= 0xff;
    let edited: &'static [u8] = Box::leak(edited.into_boxed_slice());
    let r = by_name(&verify_tpm_quote(&ev(Some(edited)), &manifest(&v4, &v7)));
    assert_ne!(r["quote-event-log"].0, Status::Ok, "{r:#?}");
    assert_ne!(r["quote-pcrs"].0, Status::Ok);
}

#[test]
fn nothing_is_trusted_before_the_signature() {
    let values = observed();
    let (m, mut s, ak) = quote(b"n", &[4, 7], &values);
    let last = s.len() - 1;
    s[last] ^= 1;
    let v4 = values[&(Bank::Sha256, 4)].to_hex();
    let v7 = values[&(Bank::Sha256, 7)].to_hex();
    let e = TpmEvidence {
        attest: &m,
        signature: &s,
        ak_spki_der: &ak,
        nonce: b"n",
        event_log: None,
    };
    let r = by_name(&verify_tpm_quote(&e, &manifest(&v4, &v7)));
    assert_eq!(r["quote-signature"].0, Status::Failed);
    for later in ["quote-nonce", "quote-selection", "quote-pcrs"] {
        assert_eq!(r[later].0, Status::Skipped, "{later}: {r:#?}");
    }
    // Truncated evidence: one failed check, the rest skipped.
    let e = TpmEvidence {
        attest: &m[..10],
        ..e
    };
    let r = by_name(&verify_tpm_quote(&e, &manifest(&v4, &v7)));
    assert_eq!(r["quote"].0, Status::Failed);
    assert_eq!(r["quote-signature"].0, Status::Skipped);
}
