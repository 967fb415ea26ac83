//! Keys held in a PKCS#11 token (an HSM, a smart card, SoftHSM2), named by an RFC 7512 URI,
//! behind [`measurements::signer::Signer`]: the same key can sign manifests (ECDSA P-256) or
//! Secure Boot images (RSA), and never leaves the token.
//!
//! `pkcs11:token=LABEL;object=LABEL[;id=%01%02][;serial=…]?module-path=/usr/lib/…/module.so&pin-value=1234`
//! (or `pin-source=FILE`). `module-path` may instead come from `$NODEIMG_PKCS11_MODULE`, the PIN
//! from `$NODEIMG_PKCS11_PIN`. Signing hashes in software and asks the token for the raw
//! operation the key type needs (`CKM_ECDSA` over SHA-256, `CKM_SHA256_RSA_PKCS`), which every
//! token that holds such keys offers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use measurements::signer::{Scheme, Signer, SignerError};

/// The URI scheme prefix.
pub const SCHEME: &str = "pkcs11:";
/// DER of the P-256 curve OID (CKA_EC_PARAMS).
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the P-384 curve OID (SEV-SNP ID and author keys).
const P384_PARAMS: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// Whether a key argument names a token key rather than a file.
pub fn is_uri(key: &str) -> bool {
    key.starts_with(SCHEME)
}

/// A parsed RFC 7512 URI (the attributes nodeimg uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `serial`: the token serial number.
    pub serial: Option<String>,
    /// `object`: the key label.
    pub object: Option<String>,
    /// `id`: the key id (CKA_ID).
    pub id: Option<Vec<u8>>,
    /// `module-path`.
    pub module_path: Option<PathBuf>,
    /// `pin-value`.
    pin_value: Option<String>,
    /// `pin-source`: a file holding the PIN.
    pub pin_source: Option<PathBuf>,
}

fn percent_decode(s: &str, what: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    anyhow!("PKCS#11 URI {what}: bad percent-escape at {:?}", &s[i..])
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

impl Uri {
    /// Parses `pkcs11:path-attributes[?query-attributes]`.
    pub fn parse(uri: &str) -> Result<Uri> {
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| anyhow!("{uri:?} is not a PKCS#11 URI (pkcs11:…)"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Uri::default();
        let text = |v: &str, k: &str| -> Result<String> {
            String::from_utf8(percent_decode(v, k)?)
                .map_err(|_| anyhow!("PKCS#11 URI attribute {k} is not UTF-8"))
        };
        for (sep, part) in [(';', path), ('&', query)] {
            for attr in part.split(sep).filter(|a| !a.is_empty()) {
                let (k, v) = attr
                    .split_once('=')
                    .ok_or_else(|| anyhow!("PKCS#11 URI attribute {attr:?} has no '='"))?;
                match k {
                    "token" => u.token = Some(text(v, k)?),
                    "serial" => u.serial = Some(text(v, k)?),
                    "object" => u.object = Some(text(v, k)?),
                    "id" => u.id = Some(percent_decode(v, k)?),
                    "module-path" => u.module_path = Some(PathBuf::from(text(v, k)?)),
                    "pin-value" => u.pin_value = Some(text(v, k)?),
                    "pin-source" => {
                        let v = text(v, k)?;
                        let v = v.strip_prefix("file:").unwrap_or(&v).to_string();
                        u.pin_source = Some(PathBuf::from(v));
                    }
                    // RFC 7512 attributes that do not select anything nodeimg needs.
                    "type"
                    | "manufacturer"
                    | "model"
                    | "library-manufacturer"
                    | "library-description"
                    | "library-version"
                    | "slot-description"
                    | "slot-manufacturer"
                    | "slot-id"
                    | "module-name" => {}
                    other => bail!("unknown PKCS#11 URI attribute {other:?}"),
                }
            }
        }
        if u.object.is_none() && u.id.is_none() {
            bail!("the PKCS#11 URI names no key: add object=LABEL (or id=…)");
        }
        Ok(u)
    }

    /// The URI without secrets, for messages.
    pub fn display(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("token", &self.token),
            ("serial", &self.serial),
            ("object", &self.object),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", hex::encode(id)));
        }
        format!("pkcs11:{}", parts.join(";"))
    }

    fn module(&self) -> Result<PathBuf> {
        match (&self.module_path, std::env::var_os("NODEIMG_PKCS11_MODULE")) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(p)) => Ok(PathBuf::from(p)),
            (None, None) => bail!(
                "{}: no PKCS#11 module: add ?module-path=/path/to/module.so to the URI or set \
                 NODEIMG_PKCS11_MODULE (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
                self.display()
            ),
        }
    }

    fn pin(&self) -> Result<Option<AuthPin>> {
        if let Some(p) = &self.pin_value {
            return Ok(Some(AuthPin::from(p.clone())));
        }
        if let Some(f) = &self.pin_source {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading the PIN from {}", f.display()))?;
            return Ok(Some(AuthPin::from(
                text.trim_end_matches(['\n', '\r']).to_string(),
            )));
        }
        Ok(std::env::var("NODEIMG_PKCS11_PIN").ok().map(AuthPin::from))
    }
}

/// An open session on the token holding the key.
struct Token {
    _ctx: Pkcs11,
    session: Session,
}

/// Opens the module, finds the token and logs in (read-write when `rw`).
fn open(uri: &Uri, rw: bool) -> Result<Token> {
    let module = uri.module()?;
    let ctx = Pkcs11::new(&module)
        .with_context(|| format!("loading the PKCS#11 module {}", module.display()))?;
    ctx.initialize(CInitializeArgs::OsThreads)
        .with_context(|| format!("initializing {}", module.display()))?;
    let mut seen = Vec::new();
    let mut chosen = None;
    for slot in ctx.get_slots_with_token()? {
        let info = ctx.get_token_info(slot)?;
        let (label, serial) = (
            info.label().trim().to_string(),
            info.serial_number().trim().to_string(),
        );
        let matches = uri.token.as_deref().is_none_or(|t| t == label)
            && uri.serial.as_deref().is_none_or(|s| s == serial);
        seen.push(label);
        if matches && chosen.is_none() {
            chosen = Some(slot);
        }
    }
    let slot = chosen.ok_or_else(|| {
        anyhow!(
            "{}: no such token in {} (tokens: {})",
            uri.display(),
            module.display(),
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            }
        )
    })?;
    let session = if rw {
        ctx.open_rw_session(slot)?
    } else {
        ctx.open_ro_session(slot)?
    };
    match uri.pin()? {
        Some(pin) => session
            .login(UserType::User, Some(&pin))
            .map_err(|e| anyhow!("{}: login failed ({e}): wrong PIN?", uri.display()))?,
        None => bail!(
            "{}: no PIN: add pin-value=… or pin-source=FILE to the URI, or set NODEIMG_PKCS11_PIN",
            uri.display()
        ),
    }
    Ok(Token { _ctx: ctx, session })
}

fn select(uri: &Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(l) = &uri.object {
        t.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

fn find_one(session: &Session, uri: &Uri, class: ObjectClass, what: &str) -> Result<ObjectHandle> {
    let found = session.find_objects(&select(uri, class))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!(
            "{}: no {what} with that label/id in the token",
            uri.display()
        ),
        many => bail!(
            "{}: {} {what}s match; add id=… to pick one",
            uri.display(),
            many.len()
        ),
    }
}

/// The SPKI DER of a public key object.
fn public_key_der(session: &Session, key: ObjectHandle) -> Result<(Scheme, Vec<u8>)> {
    use rsa::pkcs8::EncodePublicKey;
    let attrs = session.get_attributes(
        key,
        &[
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::EcPoint,
            AttributeType::Modulus,
            AttributeType::PublicExponent,
        ],
    )?;
    let mut m: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut key_type = None;
    for a in attrs {
        match a {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(v) => _ = m.insert("params", v),
            Attribute::EcPoint(v) => _ = m.insert("point", v),
            Attribute::Modulus(v) => _ = m.insert("n", v),
            Attribute::PublicExponent(v) => _ = m.insert("e", v),
            _ => {}
        }
    }
    match key_type {
        Some(t) if t == KeyType::EC => {
            // CKA_EC_POINT is a DER OCTET STRING around the SEC1 point.
            let point = m
                .get("point")
                .ok_or_else(|| anyhow!("the EC public key has no CKA_EC_POINT"))?;
            let sec1 = match point.as_slice() {
                [0x04, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
                [0x04, 0x81, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
                raw => raw,
            };
            let params = m.get("params").map(Vec::as_slice);
            if params == Some(&P384_PARAMS[..]) {
                let pk = p384::PublicKey::from_sec1_bytes(sec1)
                    .map_err(|e| anyhow!("the token's EC point is not a P-384 point: {e}"))?;
                let der = p384::pkcs8::EncodePublicKey::to_public_key_der(&pk)
                    .map_err(|e| anyhow!("encoding the public key: {e}"))?;
                return Ok((Scheme::EcdsaP384Sha384, der.into_vec()));
            }
            if params != Some(&P256_PARAMS[..]) {
                bail!("the token's EC key is on neither P-256 (manifests) nor P-384 (SEV-SNP ID keys)");
            }
            let pk = p256::PublicKey::from_sec1_bytes(sec1)
                .map_err(|e| anyhow!("the token's EC point is not a P-256 point: {e}"))?;
            let der = p256::pkcs8::EncodePublicKey::to_public_key_der(&pk)
                .map_err(|e| anyhow!("encoding the public key: {e}"))?;
            Ok((Scheme::EcdsaP256Sha256, der.into_vec()))
        }
        Some(t) if t == KeyType::RSA => {
            let n =
                rsa::BigUint::from_bytes_be(m.get("n").ok_or_else(|| anyhow!("no CKA_MODULUS"))?);
            let e = rsa::BigUint::from_bytes_be(
                m.get("e")
                    .ok_or_else(|| anyhow!("no CKA_PUBLIC_EXPONENT"))?,
            );
            let pk =
                rsa::RsaPublicKey::new(n, e).map_err(|e| anyhow!("the token's RSA key: {e}"))?;
            let bits = rsa::traits::PublicKeyParts::size(&pk) * 8;
            let der = pk
                .to_public_key_der()
                .map_err(|e| anyhow!("encoding the public key: {e}"))?;
            Ok((Scheme::RsaPkcs1Sha256 { bits }, der.into_vec()))
        }
        other => {
            bail!("the token's key type {other:?} is not supported (EC P-256, EC P-384 or RSA)")
        }
    }
}

/// A private key in a token.
pub struct TokenKey {
    uri: Uri,
    session: Mutex<Token>,
    key: ObjectHandle,
    scheme: Scheme,
    spki: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({}, {})", self.uri.display(), self.scheme)
    }
}

impl TokenKey {
    /// Opens the key a URI names (its public half must be in the token too).
    pub fn open(uri: &str) -> Result<TokenKey> {
        let uri = Uri::parse(uri)?;
        let token = open(&uri, false)?;
        let key = find_one(
            &token.session,
            &uri,
            ObjectClass::PRIVATE_KEY,
            "private key",
        )?;
        let public = find_one(&token.session, &uri, ObjectClass::PUBLIC_KEY, "public key")?;
        let (scheme, spki) =
            public_key_der(&token.session, public).with_context(|| uri.display())?;
        Ok(TokenKey {
            uri,
            session: Mutex::new(token),
            key,
            scheme,
            spki,
        })
    }
}

impl Signer for TokenKey {
    fn scheme(&self) -> Scheme {
        self.scheme
    }

    fn public_key_der(&self) -> Vec<u8> {
        self.spki.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let err = |why: String| SignerError::Sign {
            signer: self.describe(),
            why,
        };
        let token = self
            .session
            .lock()
            .map_err(|_| err("the session lock is poisoned".into()))?;
        match self.scheme {
            Scheme::EcdsaP256Sha256 => {
                let digest = <sha2::Sha256 as sha2::Digest>::digest(message);
                let raw = token
                    .session
                    .sign(&Mechanism::Ecdsa, self.key, &digest)
                    .map_err(|e| err(e.to_string()))?;
                let sig = p256::ecdsa::Signature::from_slice(&raw)
                    .map_err(|e| err(format!("the token returned no P-256 signature: {e}")))?;
                Ok(sig
                    .normalize_s()
                    .unwrap_or(sig)
                    .to_der()
                    .as_bytes()
                    .to_vec())
            }
            Scheme::EcdsaP384Sha384 => {
                let digest = <sha2::Sha384 as sha2::Digest>::digest(message);
                let raw = token
                    .session
                    .sign(&Mechanism::Ecdsa, self.key, &digest)
                    .map_err(|e| err(e.to_string()))?;
                let sig = p384::ecdsa::Signature::from_slice(&raw)
                    .map_err(|e| err(format!("the token returned no P-384 signature: {e}")))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Scheme::RsaPkcs1Sha256 { .. } => token
                .session
                .sign(&Mechanism::Sha256RsaPkcs, self.key, message)
                .map_err(|e| err(e.to_string())),
            Scheme::Ed25519 => Err(err("Ed25519 token keys are not supported".into())),
        }
    }

    fn describe(&self) -> String {
        format!("{} ({})", self.uri.display(), self.scheme)
    }
}

/// Key types `keygen` makes in a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKeyType {
    /// ECDSA P-256 (manifest signing).
    P256,
    /// RSA-2048 (Secure Boot).
    Rsa2048,
    /// ECDSA P-384 (SEV-SNP ID and author keys).
    P384,
}

/// Generates a key pair in the token under the URI's label/id (refusing an existing one) and
/// returns its public key as SPKI DER.
pub fn generate(uri_text: &str, kind: TokenKeyType) -> Result<Vec<u8>> {
    let uri = Uri::parse(uri_text)?;
    let token = open(&uri, true)?;
    let s = &token.session;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        if !s.find_objects(&select(&uri, class))?.is_empty() {
            bail!(
                "{}: the token already holds a key with that label/id; refusing to add another",
                uri.display()
            );
        }
    }
    let mut common = vec![Attribute::Token(true)];
    if let Some(l) = &uri.object {
        common.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    let id = match &uri.id {
        Some(id) => id.clone(),
        None => {
            let mut b = vec![0u8; 16];
            getrandom::fill(&mut b).map_err(|e| anyhow!("random source: {e}"))?;
            b
        }
    };
    common.push(Attribute::Id(id));
    let mut public = common.clone();
    public.push(Attribute::Verify(true));
    let mut private = common;
    private.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
    ]);
    let mechanism = match kind {
        TokenKeyType::P256 => {
            public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
            Mechanism::EccKeyPairGen
        }
        TokenKeyType::P384 => {
            public.push(Attribute::EcParams(P384_PARAMS.to_vec()));
            Mechanism::EccKeyPairGen
        }
        TokenKeyType::Rsa2048 => {
            public.push(Attribute::ModulusBits(2048.into()));
            public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            Mechanism::RsaPkcsKeyPairGen
        }
    };
    let (pubkey, _) = s
        .generate_key_pair(&mechanism, &public, &private)
        .with_context(|| format!("{}: generating the key pair in the token", uri.display()))?;
    Ok(public_key_der(s, pubkey)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parsing() {
        let u = Uri::parse(
            "pkcs11:token=my%20hsm;object=db;id=%01%ff?module-path=/usr/lib/x.so&pin-value=1234",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("my hsm"));
        assert_eq!(u.object.as_deref(), Some("db"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 255][..]));
        assert_eq!(u.module_path, Some(PathBuf::from("/usr/lib/x.so")));
        assert_eq!(u.pin_value.as_deref(), Some("1234"));
        // The PIN never shows.
        assert_eq!(u.display(), "pkcs11:token=my hsm;object=db;id=01ff");
        for (bad, want) in [
            ("pkcs11:token=t", "names no key"),
            ("pkcs11:object=k;bogus=1", "unknown PKCS#11 URI attribute"),
            ("pkcs11:object=%zz", "bad percent-escape"),
            ("pkcs11:object", "has no '='"),
            ("file:key", "not a PKCS#11 URI"),
        ] {
            let e = Uri::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
        let u = Uri::parse("pkcs11:object=k?pin-source=file:/run/pin").unwrap();
        assert_eq!(u.pin_source, Some(PathBuf::from("/run/pin")));
    }
}
