//! A TPM quote on request (`nodeimg boot --tpm --quote NONCE`): the host attaches a small
//! read-only disk whose first sector is [`REQUEST_MAGIC`], a u16 big-endian length and the
//! nonce. Nothing measures that disk (it is not the boot disk and nothing on it is executed),
//! so asking for a quote changes no PCR. The init then creates a restricted ECDSA P-256 signing
//! key under the endorsement hierarchy (`TPM2_CreatePrimary`, the same template each boot, so
//! the same TPM gives the same key), quotes SHA-256 and SHA-384 PCRs 4, 7, 9, 11, 12 and 13
//! with the nonce as qualifying data (`TPM2_Quote`) and prints one line:
//!
//! `NODEIMG-QUOTE <base64 TPMS_ATTEST> <base64 TPMT_SIGNATURE> <base64 AK SPKI DER>`
//!
//! or `NODEIMG-QUOTE-ERROR <why>` (`docs/boot-protocol.md`). The bytes are exactly what
//! `tpm2_quote -m/-s` would write, so `nodeimg verify --quote` checks both alike.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// The first bytes of the request disk.
pub const REQUEST_MAGIC: &[u8; 16] = b"NODEIMG-QUOTE-RQ";
/// The line prefixes.
pub const LINE: &str = "NODEIMG-QUOTE ";
pub const ERROR_LINE: &str = "NODEIMG-QUOTE-ERROR ";
/// The quoted PCRs (those the manifest pins), in both banks.
pub const PCRS: [u32; 7] = [4, 5, 7, 9, 11, 12, 13];
/// TPM2B_DATA holds at most 64 bytes of qualifying data (sizeof TPMT_HA).
pub const NONCE_MAX: usize = 64;

const ST_NO_SESSIONS: u16 = 0x8001;
const ST_SESSIONS: u16 = 0x8002;
const CC_CREATE_PRIMARY: u32 = 0x0000_0131;
const CC_QUOTE: u32 = 0x0000_0158;
const CC_FLUSH_CONTEXT: u32 = 0x0000_0165;
const RH_ENDORSEMENT: u32 = 0x4000_000b;
const RS_PW: u32 = 0x4000_0009;
const ALG_ECC: u16 = 0x0023;
const ALG_SHA256: u16 = 0x000b;
const ALG_SHA384: u16 = 0x000c;
const ALG_NULL: u16 = 0x0010;
const ALG_ECDSA: u16 = 0x0018;
const ECC_NIST_P256: u16 = 0x0003;
/// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | sign.
const AK_ATTRIBUTES: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 16) | (1 << 18);

/// The nonce of a request sector, if `sector` is one.
pub fn parse_request(sector: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let rest = sector.strip_prefix(REQUEST_MAGIC.as_slice())?;
    let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    if len == 0 || len > NONCE_MAX {
        return Some(Err(format!(
            "the quote request's nonce is {len} bytes, not 1 to {NONCE_MAX}"
        )));
    }
    Some(
        rest.get(2..2 + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "the quote request is truncated".to_string()),
    )
}

/// Looks for a request disk among the whole disks in `sys_block` (`/sys/class/block`).
pub fn find_request(sys_block: &Path, dev: &Path) -> Option<Result<Vec<u8>, String>> {
    let mut names: Vec<String> = fs::read_dir(sys_block)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !sys_block.join(n).join("partition").exists())
        .collect();
    names.sort();
    for n in names {
        let mut sector = [0u8; 512];
        let Ok(mut f) = File::open(dev.join(&n)) else {
            continue;
        };
        if f.read_exact(&mut sector).is_err() {
            continue;
        }
        if let Some(r) = parse_request(&sector) {
            return Some(r);
        }
    }
    None
}

/// The command bytes of `TPM2_CreatePrimary` for the AK template.
pub fn create_primary_command() -> Vec<u8> {
    let mut public = Vec::new();
    put16(&mut public, ALG_ECC);
    put16(&mut public, ALG_SHA256);
    put32(&mut public, AK_ATTRIBUTES);
    put16(&mut public, 0); // authPolicy
    put16(&mut public, ALG_NULL); // symmetric
    put16(&mut public, ALG_ECDSA); // scheme
    put16(&mut public, ALG_SHA256); //   its hash
    put16(&mut public, ECC_NIST_P256);
    put16(&mut public, ALG_NULL); // kdf
    put16(&mut public, 0); // unique.x
    put16(&mut public, 0); // unique.y
    let mut body = Vec::new();
    put32(&mut body, RH_ENDORSEMENT);
    password_session(&mut body);
    put16(&mut body, 4); // inSensitive: userAuth and data, both empty
    put16(&mut body, 0);
    put16(&mut body, 0);
    put16(&mut body, public.len() as u16);
    body.extend(public);
    put16(&mut body, 0); // outsideInfo
    put32(&mut body, 0); // creationPCR: no banks
    command(ST_SESSIONS, CC_CREATE_PRIMARY, &body)
}

/// The command bytes of `TPM2_Quote` of [`PCRS`] in both banks with `nonce`.
pub fn quote_command(handle: u32, nonce: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put32(&mut body, handle);
    password_session(&mut body);
    put16(&mut body, nonce.len() as u16);
    body.extend(nonce);
    put16(&mut body, ALG_NULL); // inScheme: the key's
    put32(&mut body, 2);
    for alg in [ALG_SHA256, ALG_SHA384] {
        put16(&mut body, alg);
        body.push(3);
        let mut bits = [0u8; 3];
        for p in PCRS {
            bits[(p / 8) as usize] |= 1 << (p % 8);
        }
        body.extend(bits);
    }
    command(ST_SESSIONS, CC_QUOTE, &body)
}

fn flush_command(handle: u32) -> Vec<u8> {
    let mut body = Vec::new();
    put32(&mut body, handle);
    command(ST_NO_SESSIONS, CC_FLUSH_CONTEXT, &body)
}

/// The AK handle and its SubjectPublicKeyInfo DER, from a `TPM2_CreatePrimary` response.
pub fn parse_create_primary(resp: &[u8]) -> Result<(u32, Vec<u8>), String> {
    let mut r = Reader(check_response(resp, "TPM2_CreatePrimary")?);
    let handle = r.u32()?;
    let _param_size = r.u32()?;
    let public = r.tpm2b()?;
    let mut p = Reader(public);
    let (ty, _name, _attrs) = (p.u16()?, p.u16()?, p.u32()?);
    let _policy = p.tpm2b()?;
    let (sym, scheme, _hash, curve, kdf) = (p.u16()?, p.u16()?, p.u16()?, p.u16()?, p.u16()?);
    if ty != ALG_ECC
        || sym != ALG_NULL
        || scheme != ALG_ECDSA
        || curve != ECC_NIST_P256
        || kdf != ALG_NULL
    {
        return Err("TPM2_CreatePrimary returned a key of another template".into());
    }
    let (x, y) = (p.tpm2b()?, p.tpm2b()?);
    if x.len() > 32 || y.len() > 32 {
        return Err(
            "TPM2_CreatePrimary returned a P-256 point with coordinates over 32 bytes".into(),
        );
    }
    // SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 } with the uncompressed point.
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    for c in [x, y] {
        spki.extend(std::iter::repeat_n(0u8, 32 - c.len()));
        spki.extend(c);
    }
    Ok((handle, spki))
}

/// The `TPMS_ATTEST` and `TPMT_SIGNATURE` bytes of a `TPM2_Quote` response.
pub fn parse_quote(resp: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut r = Reader(check_response(resp, "TPM2_Quote")?);
    let _param_size = r.u32()?;
    let attest = r.tpm2b()?.to_vec();
    let start = r.0;
    let (alg, _hash) = (r.u16()?, r.u16()?);
    if alg != ALG_ECDSA {
        return Err(format!(
            "TPM2_Quote signed with algorithm {alg:#06x}, not ECDSA"
        ));
    }
    let (sr, ss) = (r.tpm2b()?, r.tpm2b()?);
    let len = 4 + 2 + sr.len() + 2 + ss.len();
    Ok((attest, start[..len].to_vec()))
}

/// What a quote gives: (TPMS_ATTEST, TPMT_SIGNATURE, AK SPKI DER).
pub type Evidence = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Creates the AK, quotes, flushes the AK.
pub fn quote(tpm: &Path, nonce: &[u8]) -> Result<Evidence, String> {
    let mut dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(tpm)
        .map_err(|e| format!("opening {}: {e}", tpm.display()))?;
    let (handle, spki) = parse_create_primary(&transact(&mut dev, &create_primary_command())?)?;
    let quoted = transact(&mut dev, &quote_command(handle, nonce)).and_then(|r| parse_quote(&r));
    let _ = transact(&mut dev, &flush_command(handle));
    let (attest, sig) = quoted?;
    Ok((attest, sig, spki))
}

/// The console line for a request with `nonce` (or the error line).
pub fn line(tpm: &Path, nonce: &[u8]) -> String {
    match quote(tpm, nonce) {
        Ok((attest, sig, ak)) => format!(
            "{LINE}{} {} {}",
            crate::pcr::base64(&attest),
            crate::pcr::base64(&sig),
            crate::pcr::base64(&ak)
        ),
        Err(why) => format!("{ERROR_LINE}{why}"),
    }
}

fn transact(dev: &mut File, cmd: &[u8]) -> Result<Vec<u8>, String> {
    dev.write_all(cmd)
        .map_err(|e| format!("writing a TPM command: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let n = dev
        .read(&mut buf)
        .map_err(|e| format!("reading the TPM's response: {e}"))?;
    buf.truncate(n);
    Ok(buf)
}

fn command(tag: u16, cc: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + body.len());
    put16(&mut v, tag);
    put32(&mut v, (10 + body.len()) as u32);
    put32(&mut v, cc);
    v.extend(body);
    v
}

/// An empty-password authorization area (TPM_RS_PW).
fn password_session(v: &mut Vec<u8>) {
    put32(v, 9);
    put32(v, RS_PW);
    put16(v, 0); // nonce
    v.push(0); // attributes
    put16(v, 0); // hmac
}

/// The response's parameters after the header, once its code says success.
fn check_response<'a>(resp: &'a [u8], what: &str) -> Result<&'a [u8], String> {
    if resp.len() < 10 {
        return Err(format!("{what}: a {}-byte response", resp.len()));
    }
    let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
    let rc = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
    if rc != 0 {
        return Err(format!("{what} failed: TPM response code {rc:#x}"));
    }
    if size != resp.len() {
        return Err(format!(
            "{what}: the response says {size} bytes, {} came",
            resp.len()
        ));
    }
    Ok(&resp[10..])
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("a TPM response ended early".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn tpm2b(&mut self) -> Result<&'a [u8], String> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend(x.to_be_bytes());
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend(x.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_sectors() {
        let mut s = [0u8; 512];
        assert!(parse_request(&s).is_none());
        s[..16].copy_from_slice(REQUEST_MAGIC);
        s[16..18].copy_from_slice(&4u16.to_be_bytes());
        s[18..22].copy_from_slice(b"abcd");
        assert_eq!(parse_request(&s), Some(Ok(b"abcd".to_vec())));
        s[16..18].copy_from_slice(&65u16.to_be_bytes());
        assert!(matches!(parse_request(&s), Some(Err(_))));
        s[16..18].copy_from_slice(&0u16.to_be_bytes());
        assert!(matches!(parse_request(&s), Some(Err(_))));
    }

    #[test]
    fn commands_carry_their_size_and_responses_are_checked() {
        let c = create_primary_command();
        assert_eq!(
            u32::from_be_bytes([c[2], c[3], c[4], c[5]]) as usize,
            c.len()
        );
        let q = quote_command(0x8000_0000, &[1; 32]);
        assert_eq!(
            u32::from_be_bytes([q[2], q[3], q[4], q[5]]) as usize,
            q.len()
        );
        // PCRs 4,5,7 in byte 0 (0xb0), 9,11,12,13 in byte 1 (0x3a).
        assert_eq!(&q[q.len() - 3..], &[0xb0, 0x3a, 0x00]);
        assert!(
            check_response(&[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x22], "x")
                .unwrap_err()
                .contains("0x922")
        );
        assert!(parse_create_primary(&[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]).is_err());
        assert!(parse_quote(&[0x80, 0x01, 0, 0, 0, 9]).is_err());
    }
}
