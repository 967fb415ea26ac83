use super::*;

#[test]
fn keygen_writes_private_0600_public_0644_and_refuses_to_overwrite() {
    for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("signing.key");
        let public = keygen(&key, alg).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        let pub_path = dir.path().join("signing.key.pub");
        assert_eq!(mode(&pub_path), 0o644);
        let secret = read_signing_key(&key).unwrap();
        assert_eq!(secret.algorithm(), alg);
        assert_eq!(secret.verifying_key(), public);
        assert_eq!(read_public_key(&pub_path).unwrap(), public);
        let before = std::fs::read(&key).unwrap();
        let e = keygen(&key, alg).unwrap_err().to_string();
        assert!(e.contains("already exists; refusing to overwrite"), "{e}");
        assert_eq!(std::fs::read(&key).unwrap(), before);
        // A stray KEY.pub also blocks, and no private key is left behind.
        let other = dir.path().join("other");
        std::fs::write(public_key_path(&other), "x").unwrap();
        let e = keygen(&other, alg).unwrap_err().to_string();
        assert!(e.contains("other.pub already exists"), "{e}");
        assert!(!other.exists());
    }
}

#[test]
fn generated_keys_differ() {
    let a = generate(Algorithm::Ed25519).unwrap().verifying_key();
    let b = generate(Algorithm::Ed25519).unwrap().verifying_key();
    assert_ne!(a, b);
}

#[test]
fn key_errors_name_the_file_but_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    keygen(&key, Algorithm::Ed25519).unwrap();
    let pem = std::fs::read_to_string(&key).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    // Swap the label so the key is read as a public key: the error must not echo it.
    let e = read_public_key(&key).unwrap_err();
    let text = format!("{e:#} {e:?}");
    assert!(text.contains("reading public key"), "{text}");
    assert!(text.contains(&key.display().to_string()), "{text}");
    assert!(!text.contains(&body[body.len() - 20..]), "{text}");
    // A truncated private key.
    std::fs::write(&key, pem.replace(&body, &body[..body.len() - 4])).unwrap();
    let e = read_signing_key(&key).unwrap_err();
    let text = format!("{e:#} {e:?}");
    assert!(text.contains("reading signing key"), "{text}");
    assert!(!text.contains(&body[8..28]), "{text}");
}

#[test]
fn default_paths() {
    assert_eq!(
        default_bundle_path(Path::new("out/manifest.json")),
        Path::new("out/manifest.sigstore.json")
    );
    assert_eq!(
        default_bundle_path(Path::new("manifest.json")),
        Path::new("manifest.sigstore.json")
    );
    assert_eq!(
        public_key_path(Path::new("a/k.pem")),
        Path::new("a/k.pem.pub")
    );
}
