use super::*;

/// A quote over sha256 PCRs `pcrs` with `digest` and `nonce`, marshalled as a TPM does.
fn attest(nonce: &[u8], pcrs: &[u32], digest: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(TPM_GENERATED.to_be_bytes());
    v.extend(ST_ATTEST_QUOTE.to_be_bytes());
    v.extend(34u16.to_be_bytes());
    v.extend([0x00, 0x0b]);
    v.extend([7u8; 32]);
    v.extend((nonce.len() as u16).to_be_bytes());
    v.extend(nonce);
    v.extend(123456u64.to_be_bytes());
    v.extend(1u32.to_be_bytes());
    v.extend(0u32.to_be_bytes());
    v.push(1);
    v.extend(0x2023_0101u64.to_be_bytes());
    v.extend(1u32.to_be_bytes());
    v.extend(0x000bu16.to_be_bytes());
    v.push(3);
    let mut bits = [0u8; 3];
    for p in pcrs {
        bits[(*p / 8) as usize] |= 1 << (p % 8);
    }
    v.extend(bits);
    v.extend((digest.len() as u16).to_be_bytes());
    v.extend(digest);
    v
}

fn ecdsa_signature(key: &p256::ecdsa::SigningKey, msg: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::Signer;
    let sig: p256::ecdsa::Signature = key.sign(msg);
    let (r, s) = sig.split_bytes();
    let mut v = Vec::new();
    v.extend(0x0018u16.to_be_bytes());
    v.extend(0x000bu16.to_be_bytes());
    for part in [r, s] {
        v.extend(32u16.to_be_bytes());
        v.extend(part.as_slice());
    }
    v
}

fn key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap()
}

fn spki(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    use spki::EncodePublicKey;
    key.verifying_key().to_public_key_der().unwrap().into_vec()
}

#[test]
fn parses_a_quote_and_verifies_its_ecdsa_signature() {
    let msg = attest(b"nonce", &[4, 7, 9, 11, 12, 13], &[0xaa; 32]);
    let q = Quote::parse(&msg).unwrap();
    assert_eq!(q.extra_data, b"nonce");
    assert_eq!(q.selections[0].pcrs, vec![4, 7, 9, 11, 12, 13]);
    assert_eq!(q.selections[0].describe(), "sha256:4,7,9,11,12,13");
    assert_eq!((q.clock, q.reset_count, q.safe), (123456, 1, true));
    let k = key();
    let sig = QuoteSignature::parse(&ecdsa_signature(&k, &msg)).unwrap();
    assert_eq!(sig.scheme(), "ecdsa-sha256");
    sig.verify(&msg, &spki(&k)).unwrap();
    // One bit of the signed message flipped.
    let mut bad = msg.clone();
    bad[40] ^= 1;
    assert!(matches!(
        sig.verify(&bad, &spki(&k)),
        Err(QuoteError::Signature { .. })
    ));
    // Another key.
    let other = p256::ecdsa::SigningKey::from_slice(&[0x43; 32]).unwrap();
    assert!(sig.verify(&msg, &spki(&other)).is_err());
}

#[test]
fn the_expected_digest_concatenates_in_selection_order() {
    let msg = attest(b"", &[4, 7], &[0; 32]);
    let q = Quote::parse(&msg).unwrap();
    let d4 = Digest::from_slice(Bank::Sha256, &[4; 32]).unwrap();
    let d7 = Digest::from_slice(Bank::Sha256, &[7; 32]).unwrap();
    let values = BTreeMap::from([((Bank::Sha256, 4), d4), ((Bank::Sha256, 7), d7)]);
    let want = Bank::Sha256.hash_pieces(&[&[4; 32], &[7; 32]]);
    assert_eq!(
        q.expected_digest(Bank::Sha256, &values).unwrap(),
        want.as_bytes()
    );
    let only4 = BTreeMap::from([((Bank::Sha256, 4), d4)]);
    assert_eq!(
        q.expected_digest(Bank::Sha256, &only4).unwrap_err(),
        ("sha256".into(), 7)
    );
}

#[test]
fn hostile_quotes_are_refused_with_the_field_named() {
    let msg = attest(b"n", &[4], &[1; 32]);
    for cut in [0, 3, 5, 20, msg.len() - 1] {
        let e = Quote::parse(&msg[..cut]).unwrap_err();
        assert!(matches!(e, QuoteError::Truncated { .. }), "{cut}: {e}");
    }
    let mut long = msg.clone();
    long.push(0);
    assert!(matches!(
        Quote::parse(&long),
        Err(QuoteError::Trailing { .. })
    ));
    let mut magic = msg.clone();
    magic[0] = 0;
    assert!(Quote::parse(&magic)
        .unwrap_err()
        .to_string()
        .contains("magic"));
    let mut ty = msg.clone();
    ty[5] = 0x17; // TPM_ST_ATTEST_CERTIFY
    assert!(Quote::parse(&ty).unwrap_err().to_string().contains("type"));
    // count = 0xffffffff banks.
    let count_at = 4 + 2 + 2 + 34 + 2 + 1 + 17 + 8;
    let mut count = msg.clone();
    count[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = Quote::parse(&count).unwrap_err().to_string();
    assert!(e.contains("pcrSelect.count"), "{e}");
    // sizeofSelect = 255.
    let mut size = msg.clone();
    size[count_at + 6] = 255;
    let e = Quote::parse(&size).unwrap_err().to_string();
    assert!(e.contains("sizeofSelect"), "{e}");
    // A TPM2B that claims more bytes than there are.
    let mut big = msg.clone();
    big[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
    assert!(matches!(
        Quote::parse(&big),
        Err(QuoteError::Truncated { .. })
    ));
}

#[test]
fn unsupported_signature_schemes_and_keys_are_named() {
    let mut hmac = vec![0x00, 0x05, 0x00, 0x0b];
    hmac.extend([0u8; 34]);
    assert!(QuoteSignature::parse(&hmac)
        .unwrap_err()
        .to_string()
        .contains("sigAlg"));
    let mut sha1 = vec![0x00, 0x18, 0x00, 0x04, 0, 1, 1, 0, 1, 1];
    assert!(QuoteSignature::parse(&sha1)
        .unwrap_err()
        .to_string()
        .contains("sha1"));
    sha1.truncate(5);
    assert!(QuoteSignature::parse(&sha1).is_err());
    assert!(AkKey::from_spki_der(b"junk").is_err());
    let e =
        AkKey::spki_der_from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert!(e.is_err());
    // An RSA signature presented with an EC key.
    let msg = attest(b"", &[4], &[1; 32]);
    let mut rsa_sig = vec![0x00, 0x14, 0x00, 0x0b, 0x00, 0x02, 1, 2];
    let s = QuoteSignature::parse(&rsa_sig).unwrap();
    let e = s.verify(&msg, &spki(&key())).unwrap_err().to_string();
    assert!(e.contains("cannot come from a P-256 key"), "{e}");
    rsa_sig[1] = 0x16;
    assert!(QuoteSignature::parse(&rsa_sig).is_ok());
}
