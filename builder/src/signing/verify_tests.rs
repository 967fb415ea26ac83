use super::*;
use measurements::signing::Algorithm;
use sha2::{Digest, Sha256};

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// disk.raw, uki.efi, manifest.json (with `extra` top-level members), key pair, bundle.
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("disk.raw"), b"a small fake disk").unwrap();
        std::fs::write(p("uki.efi"), b"MZ fake uki").unwrap();
        let sha = |n: &str| hex::encode(Sha256::digest(std::fs::read(p(n)).unwrap()));
        let manifest = format!(
            "{{\n  \"schema\": \"nodeimg.manifest/v1\",\n  \"artifacts\": {{\n    \"disk.raw\": {{\"sha256\": \"{}\", \"size\": 17}},\n    \"uki.efi\": {{\"sha256\": \"{}\", \"size\": 11}}\n  }}{extra}\n}}\n",
            sha("disk.raw"),
            sha("uki.efi")
        );
        std::fs::write(p("manifest.json"), manifest).unwrap();
        crate::signing::keygen(&p("key"), Algorithm::EcdsaP256).unwrap();
        let bundle = crate::signing::sign_manifest(&p("manifest.json"), &p("key")).unwrap();
        std::fs::write(p("manifest.sigstore.json"), bundle).unwrap();
        Fixture { dir }
    }

    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    fn request(&self) -> Request {
        Request {
            manifest: self.path("manifest.json"),
            bundle: self.path("manifest.sigstore.json"),
            key: Some(self.path("key.pub")),
            identity: None,
            trusted_root: None,
            staging: false,
            require_tlog: false,
            quote: None,
            snp: None,
            snp_id: Default::default(),
            image: Some(self.path("disk.raw")),
            event_log: None,
            ccel: None,
            pcrs: None,
            policy: Default::default(),
        }
    }
}

fn statuses(r: &Report) -> Vec<(&'static str, Status)> {
    r.checks.iter().map(|c| (c.check, c.status)).collect()
}

#[test]
fn all_checks_pass_for_a_signed_manifest_and_its_disk() {
    let f = Fixture::new("");
    let r = verify(&f.request()).unwrap();
    assert!(r.ok, "{r:#?}");
    use Status::*;
    assert_eq!(
        statuses(&r),
        [
            ("bundle", Ok),
            ("signature", Ok),
            ("manifest", Ok),
            ("subjects", Ok),
            ("predicate", Ok),
            ("image", Ok),
            ("image-pcrs", Skipped),
        ]
    );
    assert_eq!(r.key.as_ref().unwrap().algorithm, "ecdsa-p256");
    assert!(
        r.checks[3]
            .detail
            .contains("disk.raw, uki.efi, manifest.json"),
        "{r:#?}"
    );
}

#[test]
fn a_changed_disk_names_both_digests() {
    let f = Fixture::new("");
    std::fs::write(f.path("disk.raw"), b"a small fake disK").unwrap();
    let r = verify(&f.request()).unwrap();
    assert!(!r.ok);
    let image = r.checks.iter().find(|c| c.check == "image").unwrap();
    assert_eq!(image.status, Status::Failed);
    assert!(
        image
            .detail
            .starts_with("disk.raw: the signed manifest says sha256:"),
        "{}",
        image.detail
    );
}

#[test]
fn another_key_stops_after_the_signature() {
    let f = Fixture::new("");
    crate::signing::keygen(&f.path("other"), Algorithm::EcdsaP256).unwrap();
    let mut req = f.request();
    req.key = Some(f.path("other.pub"));
    req.pcrs = Some(f.path("nonexistent"));
    let r = verify(&req).unwrap();
    assert!(!r.ok);
    use Status::*;
    assert_eq!(
        statuses(&r),
        [
            ("bundle", Ok),
            ("signature", Failed),
            ("image", Skipped),
            ("pcrs", Skipped)
        ]
    );
    assert!(
        r.checks[1].detail.contains("is not the pinned key's"),
        "{r:#?}"
    );
}

#[test]
fn measurement_checks_fail_on_unreadable_inputs() {
    let f = Fixture::new(",\n  \"pcrs\": {\"sha256\": {\"11\": \"00\"}}");
    std::fs::write(f.path("log.bin"), b"").unwrap();
    let mut req = f.request();
    req.event_log = Some(f.path("log.bin"));
    let r = verify(&req).unwrap();
    assert!(!r.ok);
    for name in ["image-pcrs", "event-log"] {
        let c = r.checks.iter().find(|c| c.check == name).unwrap();
        assert_eq!(c.status, Status::Failed, "{name}");
        let want = if name == "image-pcrs" {
            "GPT"
        } else {
            "event log"
        };
        assert!(c.detail.contains(want), "{name}: {}", c.detail);
    }
}

const H: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const J: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const K: &str = "3333333333333333333333333333333333333333333333333333333333333333";

#[test]
fn observed_pcrs_are_compared_with_the_signed_ones() {
    let manifest = serde_json::json!({
        "pcrs": {"sha256": {"4": H, "11": J}, "sha384": {"4": H}},
        "pcr11_phases": {"sha256": {"enter-initrd": K}},
    });
    let cases: &[(String, Result<&str, &str>)] = &[
        (
            format!(r#"{{"sha256":{{"4":"{H}","11":"{J}","7":"{K}"}}}}"#),
            Ok("2 PCRs equal: sha256:4 sha256:11"),
        ),
        (
            format!(r#"{{"console":"…","pcrs":{{"sha256":{{"4":"{H}","11":"{J}"}}}}}}"#),
            Ok("2 PCRs equal"),
        ),
        (
            format!(r#"{{"sha256":{{"4":"{H}","11":"{K}"}}}}"#),
            Ok("sha256:11 (after enter-initrd)"),
        ),
        (
            format!(r#"{{"sha256":{{"4":"{J}","11":"{J}"}}}}"#),
            Err(&*format!(
                "sha256:4 is {J}, the signed manifest expects {H}"
            )),
        ),
        (
            format!(r#"{{"sha256":{{"4":"{H}"}}}}"#),
            Err("sha256:11 is not in the file"),
        ),
        (
            format!(r#"{{"sha1":{{"4":"{}"}}}}"#, &H[..40]),
            Err("no bank in common"),
        ),
        ("{".to_string(), Err("not JSON")),
        (r#"{"md5":{}}"#.to_string(), Err("unknown PCR bank")),
    ];
    for (text, want) in cases {
        match (compare_observed(text, &manifest), want) {
            (Ok(d), Ok(w)) => assert!(d.contains(w), "{text}: {d}"),
            (Err(e), Err(w)) => assert!(format!("{e:#}").contains(w), "{text}: {e:#}"),
            (got, w) => panic!("{text}: got {got:?}, want {w:?}"),
        }
    }
    let e = compare_observed(r#"{"sha256":{}}"#, &serde_json::json!({})).unwrap_err();
    assert!(e.to_string().contains("no pcrs"), "{e}");
}

/// A real OVMF + swtpm event log (fixtures/eventlog) replays to the PCRs the guest read; one
/// changed value is reported with the PCR that no longer matches.
#[test]
fn event_log_replays_to_signed_pcrs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/eventlog");
    let log = std::fs::read(dir.join("ovmf-stub252.bin")).unwrap();
    let observed: Value =
        serde_json::from_slice(&std::fs::read(dir.join("ovmf-stub252.pcrs.json")).unwrap())
            .unwrap();
    // The PCRs nodeimg signs; 10 (IMA) is extended by the kernel outside the firmware log.
    let keep = |bank: &str| -> Value {
        let b = observed[bank].as_object().unwrap();
        ["4", "9", "11", "12", "13"]
            .iter()
            .map(|k| (k.to_string(), b[*k].clone()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mut manifest =
        serde_json::json!({ "pcrs": { "sha256": keep("sha256"), "sha384": keep("sha384") } });
    let ok = replay_event_log(&log, &manifest).unwrap();
    assert!(ok.contains("all 10 signed PCR values"), "{ok}");
    manifest["pcrs"]["sha256"]["9"] = Value::String(H.into());
    let e = replay_event_log(&log, &manifest).unwrap_err().to_string();
    assert!(e.contains("sha256 PCR 9"), "{e}");
}
