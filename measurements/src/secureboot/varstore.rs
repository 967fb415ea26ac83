//! The edk2/OVMF authenticated variable store: the `OVMF_VARS*.fd` file QEMU maps as pflash
//! unit 1. A firmware volume header (`EFI_FIRMWARE_VOLUME_HEADER`, file system GUID
//! `EFI_SYSTEM_NV_DATA_FV_GUID`), then at `HeaderLength` a `VARIABLE_STORE_HEADER` of `Size`
//! bytes holding `AUTHENTICATED_VARIABLE_HEADER`s, each followed by its UTF-16LE name (with
//! NUL) and data, the next header 4-byte aligned (`HEADER_ALIGNMENT`; x86 `ALIGNMENT` is 1, so
//! no padding between name and data). Free space is 0xFF; the list ends at the first header
//! whose `StartId` is not 0x55AA. Bytes after the store (the fault-tolerant-write working
//! block and spare area) are never touched.
//!
//! States are flash bits that only get cleared: `VAR_HEADER_VALID_ONLY` 0x7f, `VAR_ADDED`
//! 0x3f, then `VAR_IN_DELETED_TRANSITION` 0xfe and `VAR_DELETED` 0xfd are ANDed in (edk2
//! leaves a replaced variable at 0x3c). Pure code: bytes in, bytes out.

use std::ops::Range;

use super::{utf16le, EfiTime, Guid};

/// A GUID from its textual form written as one hex number (`0x8be4df61_93ca_…`).
const fn guid(t: u128) -> Guid {
    let d4 = (t as u64).to_be_bytes();
    Guid::new((t >> 96) as u32, (t >> 80) as u16, (t >> 64) as u16, d4)
}

/// `EFI_SYSTEM_NV_DATA_FV_GUID`: the file system GUID of the variable firmware volume.
pub const EFI_SYSTEM_NV_DATA_FV: Guid = guid(0xfff12b8d_7696_4c8b_a985_2747075b4f50);
/// `gEfiAuthenticatedVariableGuid`: signature of the authenticated variable store.
pub const EFI_AUTHENTICATED_VARIABLE: Guid = guid(0xaaf32c78_947b_439a_a180_2e144ec37792);
/// `gEfiVariableGuid`: signature of the non-authenticated variable store (refused).
pub const EFI_VARIABLE: Guid = guid(0xddcf3616_3275_4164_98b6_fe85707ffe7d);
/// `gEfiSecureBootEnableDisableGuid`: vendor GUID of OVMF's `SecureBootEnable` (NV|BS, u8).
pub const EFI_SECURE_BOOT_ENABLE_DISABLE: Guid = guid(0xf0a30bc7_af08_4556_99c4_001009c93a44);
/// `gEfiCustomModeEnableGuid`: vendor GUID of OVMF's `CustomMode` (NV|BS, u8).
pub const EFI_CUSTOM_MODE_ENABLE: Guid = guid(0xc076ec0c_7028_4399_a072_71ee5c448b9f);

/// `VAR_ADDED`: the state of a live variable.
pub const VAR_ADDED: u8 = 0x3f;
/// `VAR_IN_DELETED_TRANSITION`, ANDed into the state.
pub const VAR_IN_DELETED_TRANSITION: u8 = 0xfe;
/// `VAR_DELETED`, ANDed into the state.
pub const VAR_DELETED: u8 = 0xfd;

const VARIABLE_DATA: u16 = 0x55aa;
const FV_BLOCK_MAP: usize = 56;
const STORE_HEADER_LEN: usize = 28;
const VAR_HEADER_LEN: usize = 60;

/// One variable of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The name, without the NUL terminator.
    pub name: String,
    /// The vendor GUID.
    pub guid: Guid,
    /// `EFI_VARIABLE_*` attributes.
    pub attributes: u32,
    /// The header's `TimeStamp` (all zero unless time-based authenticated); `Nanosecond`,
    /// `TimeZone` and `Daylight` are not kept and are written as zero.
    pub timestamp: EfiTime,
    /// The payload.
    pub data: Vec<u8>,
}

/// Why a VARS file was refused or cannot hold the variables; every variant names the byte
/// offset of the problem (except [`VarStoreError::BadInput`], which names the variable).
#[derive(Debug, thiserror::Error)]
pub enum VarStoreError {
    /// The input ends inside `what`, a structure of `len` bytes at `offset`.
    #[error("offset {offset:#x}: {what} needs {len} bytes, the input has only {file_len}")]
    Truncated {
        offset: usize,
        len: usize,
        what: &'static str,
        file_len: usize,
    },
    /// The firmware volume header is not a valid NV data volume header.
    #[error("offset {offset:#x}: bad firmware volume header: {reason}")]
    BadFvHeader { offset: usize, reason: String },
    /// The store is the non-authenticated `gEfiVariableGuid` format.
    #[error("offset {offset:#x}: the variable store is the non-authenticated gEfiVariableGuid format; only the authenticated one is supported")]
    NotAuthenticated { offset: usize },
    /// The variable store header (signature, `Size`, `Format`, `State`) is wrong.
    #[error("offset {offset:#x}: bad variable store header: {reason}")]
    BadStoreHeader { offset: usize, reason: String },
    /// The variable header at `offset` (or its name) is malformed.
    #[error("offset {offset:#x}: bad variable: {reason}")]
    BadVariable { offset: usize, reason: String },
    /// [`enroll`]: the free space is not all 0xFF; `byte` at `offset` is the first that is not.
    #[error("offset {offset:#x}: free space holds {byte:#04x}, not erased 0xff; refusing to overwrite unparsed data")]
    NotErased { offset: usize, byte: u8 },
    /// [`enroll`]: the new variables (`need` bytes) do not fit in the free space at `offset`.
    #[error("offset {offset:#x}: variable store full: {need} bytes needed, {available} free")]
    StoreFull {
        offset: usize,
        need: usize,
        available: usize,
    },
    /// [`enroll`]: a given variable cannot be stored.
    #[error("variable {name:?} ({guid}): {reason}")]
    BadInput {
        name: String,
        guid: Guid,
        reason: &'static str,
    },
}

impl VarStoreError {
    /// The byte offset the error names (`None` for [`VarStoreError::BadInput`]).
    pub fn offset(&self) -> Option<usize> {
        use VarStoreError::*;
        match self {
            Truncated { offset, .. } | BadFvHeader { offset, .. } | NotAuthenticated { offset } => {
                Some(*offset)
            }
            BadStoreHeader { offset, .. } | BadVariable { offset, .. } => Some(*offset),
            NotErased { offset, .. } | StoreFull { offset, .. } => Some(*offset),
            BadInput { .. } => None,
        }
    }
}

type Result<T> = std::result::Result<T, VarStoreError>;

fn bytes<'a>(b: &'a [u8], offset: usize, len: usize, what: &'static str) -> Result<&'a [u8]> {
    let file_len = b.len();
    let e = || VarStoreError::Truncated {
        offset,
        len,
        what,
        file_len,
    };
    offset
        .checked_add(len)
        .and_then(|end| b.get(offset..end))
        .ok_or_else(e)
}

fn u32_at(b: &[u8], offset: usize, what: &'static str) -> Result<u32> {
    let s = bytes(b, offset, 4, what)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn guid_at(b: &[u8], offset: usize, what: &'static str) -> Result<Guid> {
    Ok(Guid::from_bytes(bytes(b, offset, 16, what)?).expect("16 bytes"))
}

fn fv_err(offset: usize, reason: String) -> VarStoreError {
    VarStoreError::BadFvHeader { offset, reason }
}

fn store_err(offset: usize, reason: String) -> VarStoreError {
    VarStoreError::BadStoreHeader { offset, reason }
}

fn var_err(offset: usize, reason: impl Into<String>) -> VarStoreError {
    let reason = reason.into();
    VarStoreError::BadVariable { offset, reason }
}

/// One variable header as found in the store (any state), with its name and data ranges.
#[derive(Debug)]
struct Header {
    offset: usize,
    state: u8,
    attributes: u32,
    timestamp: [u8; 16],
    guid: Guid,
    name: Range<usize>,
    data: Range<usize>,
}

/// The variable region: headers in store order, where the list ends, where the store ends.
#[derive(Debug)]
struct Layout {
    headers: Vec<Header>,
    free: usize,
    end: usize,
}

/// The 16-bit sum of the firmware volume header: 0 when its `Checksum` is right.
fn header_sum(header: &[u8]) -> u16 {
    let mut sum = 0u16;
    for w in header.chunks_exact(2) {
        sum = sum.wrapping_add(u16::from_le_bytes([w[0], w[1]]));
    }
    sum
}

/// Checks the firmware volume header; returns (FvLength, HeaderLength).
fn fv_header(f: &[u8]) -> Result<(usize, usize)> {
    let sig = bytes(f, 40, 4, "firmware volume header")?;
    if sig != b"_FVH" {
        return Err(fv_err(40, format!("Signature is {sig:02x?}, not \"_FVH\"")));
    }
    let fs = guid_at(f, 16, "firmware volume header")?;
    if fs != EFI_SYSTEM_NV_DATA_FV {
        let reason = format!("FileSystemGuid is {fs}, not EFI_SYSTEM_NV_DATA_FV_GUID");
        return Err(fv_err(16, reason));
    }
    let len = u64::from_le_bytes(bytes(f, 32, 8, "FvLength")?.try_into().expect("8 bytes"));
    let Some(fv_len) = usize::try_from(len).ok().filter(|&l| l <= f.len()) else {
        let r = format!("FvLength {len:#x} is past the file end");
        return Err(fv_err(32, r));
    };
    let hlen = bytes(f, 48, 2, "HeaderLength")?;
    let hlen = usize::from(u16::from_le_bytes([hlen[0], hlen[1]]));
    if hlen < FV_BLOCK_MAP + 16 || hlen % 2 != 0 || hlen > fv_len {
        let r = format!("HeaderLength {hlen:#x} is odd or out of range");
        return Err(fv_err(48, r));
    }
    let header = bytes(f, 0, hlen, "firmware volume header")?;
    if let sum @ 1.. = header_sum(header) {
        let r = format!("the 16-bit header sum is {sum:#06x}, not 0");
        return Err(fv_err(50, r));
    }
    if header[55] != 2 {
        return Err(fv_err(55, format!("Revision is {}, not 2", header[55])));
    }
    let (mut pos, mut total) = (FV_BLOCK_MAP, 0u64);
    loop {
        if pos + 8 > hlen {
            return Err(fv_err(pos, "the block map has no {0,0} entry".into()));
        }
        let (n, l) = (u32_at(header, pos, "")?, u32_at(header, pos + 4, "")?);
        if (n, l) == (0, 0) {
            break;
        }
        total = total.saturating_add(u64::from(n) * u64::from(l));
        pos += 8;
    }
    if total != len {
        let r = format!("the block map covers {total:#x}, not {len:#x}");
        return Err(fv_err(56, r));
    }
    Ok((fv_len, hlen))
}

fn layout(f: &[u8]) -> Result<Layout> {
    let (fv_len, hlen) = fv_header(f)?;
    let store_guid = guid_at(f, hlen, "variable store header")?;
    if store_guid == EFI_VARIABLE {
        return Err(VarStoreError::NotAuthenticated { offset: hlen });
    }
    if store_guid != EFI_AUTHENTICATED_VARIABLE {
        let reason = format!("Signature is {store_guid}, not gEfiAuthenticatedVariableGuid");
        return Err(store_err(hlen, reason));
    }
    let hdr = bytes(f, hlen, STORE_HEADER_LEN, "variable store header")?;
    if hdr[20] != 0x5a {
        let r = format!("Format is {:#04x}, not 0x5a", hdr[20]);
        return Err(store_err(hlen + 20, r));
    }
    if hdr[21] != 0xfe {
        let r = format!("State is {:#04x}, not 0xfe", hdr[21]);
        return Err(store_err(hlen + 21, r));
    }
    let size = u32_at(hdr, 16, "variable store header")?;
    let end = (size as usize).checked_add(hlen).filter(|&e| e <= fv_len);
    let Some(end) = end.filter(|_| size as usize >= STORE_HEADER_LEN) else {
        let reason = format!("Size {size:#x} is too small or runs past FvLength {fv_len:#x}");
        return Err(store_err(hlen + 16, reason));
    };

    let mut headers = Vec::new();
    let mut pos = (hlen + STORE_HEADER_LEN).next_multiple_of(4);
    // edk2 IsValidVariableHeader: inside the store and StartId == 0x55AA.
    while pos + 2 <= end && f[pos..pos + 2] == VARIABLE_DATA.to_le_bytes() {
        let Some(h) = f.get(pos..end).filter(|h| h.len() >= VAR_HEADER_LEN) else {
            let r = format!("the header runs past the store end {end:#x}");
            return Err(var_err(pos, r));
        };
        let field = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let (state, attributes) = (h[2], field(4));
        let (mut name_size, mut data_size) = (field(36), field(40));
        // edk2 NameSizeOfVariable/DataSizeOfVariable: a half-written header has no name or data.
        if state == 0xff || [attributes, name_size, data_size].contains(&u32::MAX) {
            (name_size, data_size) = (0, 0);
        }
        let name_start = pos + VAR_HEADER_LEN;
        let data_start = name_start.checked_add(name_size as usize);
        let data_end = data_start.and_then(|d| d.checked_add(data_size as usize));
        let (Some(data_start), Some(data_end)) = (data_start, data_end.filter(|&e| e <= end))
        else {
            let r = format!("NameSize {name_size:#x} + DataSize {data_size:#x} run past {end:#x}");
            return Err(var_err(pos, r));
        };
        headers.push(Header {
            offset: pos,
            state,
            attributes,
            timestamp: h[16..32].try_into().expect("16 bytes"),
            guid: Guid::from_bytes(&h[44..60]).expect("16 bytes"),
            name: name_start..data_start,
            data: data_start..data_end,
        });
        pos = data_end.next_multiple_of(4);
    }
    let free = pos;
    Ok(Layout { headers, free, end })
}

fn decode_name(raw: &[u8], offset: usize) -> Result<String> {
    let bad = |reason: &str| var_err(offset, reason);
    if raw.len() < 4 || !raw.len().is_multiple_of(2) {
        return Err(bad("NameSize is odd or below 4 (a character and the NUL)"));
    }
    let units = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    let units: Vec<u16> = units.collect();
    let (nul, chars) = units.split_last().expect("at least two units");
    if *nul != 0 || chars.contains(&0) {
        return Err(bad("name is not exactly NUL-terminated"));
    }
    String::from_utf16(chars).map_err(|_| bad("name is not valid UTF-16"))
}

/// Parses a VARS file (firmware volume header + authenticated variable store) and returns the
/// live variables (State == `VAR_ADDED` 0x3f) in store order, as virt-fw-vars does. Deleted
/// (0x3c/0x3d), header-only (0x7f) and in-deleted-transition (0x3e) entries are skipped; note
/// that edk2 itself would still use a 0x3e entry that has no 0x3f twin. If the store holds
/// two live entries of one (name, GUID), both are returned (edk2 uses the first).
pub fn parse(store: &[u8]) -> Result<Vec<Variable>> {
    live(store, &layout(store)?)
}

fn live(store: &[u8], l: &Layout) -> Result<Vec<Variable>> {
    let live = l.headers.iter().filter(|h| h.state == VAR_ADDED);
    live.map(|h| {
        Ok(Variable {
            name: decode_name(&store[h.name.clone()], h.offset)?,
            guid: h.guid,
            attributes: h.attributes,
            timestamp: EfiTime::from_bytes(&h.timestamp),
            data: store[h.data.clone()].to_vec(),
        })
    })
    .collect()
}

/// The UTF-16LE name with its NUL, as stored.
fn name_bytes(name: &str) -> Vec<u8> {
    let mut b = utf16le(name);
    b.extend([0, 0]);
    b
}

fn input_err(v: &Variable, reason: &'static str) -> VarStoreError {
    let (name, guid) = (v.name.clone(), v.guid);
    VarStoreError::BadInput { name, guid, reason }
}

fn encode(v: &Variable) -> Result<Vec<u8>> {
    let bad = |reason| input_err(v, reason);
    if v.name.is_empty() || v.name.contains('\0') {
        return Err(bad("name is empty or contains NUL"));
    }
    let name = name_bytes(&v.name);
    let name_size = u32::try_from(name.len()).map_err(|_| bad("name too long"))?;
    let data_size = u32::try_from(v.data.len()).map_err(|_| bad("data longer than 4 GiB"))?;
    let mut b = Vec::with_capacity(VAR_HEADER_LEN + name.len() + v.data.len() + 3);
    b.extend(VARIABLE_DATA.to_le_bytes());
    b.extend([VAR_ADDED, 0]); // State, Reserved
    b.extend(v.attributes.to_le_bytes());
    b.extend(0u64.to_le_bytes()); // MonotonicCount
    b.extend(v.timestamp.to_bytes());
    b.extend(0u32.to_le_bytes()); // PubKeyIndex
    b.extend(name_size.to_le_bytes());
    b.extend(data_size.to_le_bytes());
    b.extend(v.guid.0);
    b.extend(name);
    b.extend(&v.data);
    b.resize(b.len().next_multiple_of(4), 0xff);
    Ok(b)
}

/// A copy of `template` (a VARS file, e.g. Debian's empty `OVMF_VARS_4M.fd`) with `vars` set.
///
/// A live (0x3f) or in-deleted-transition (0x3e) entry of the same (name, GUID) in the template
/// is marked deleted in place (State ANDed with 0xfe & 0xfd, the 0x3c edk2 leaves), not
/// dropped: nothing before the free space moves. Each given variable is then appended in the
/// given order after the last one, 4-byte aligned, with StartId 0x55AA, State 0x3f, Reserved 0,
/// MonotonicCount 0, PubKeyIndex 0, NameSize including the NUL, padding 0xFF. Everything
/// else, including all bytes after the store, is copied unchanged, so the output is
/// deterministic and as long as the template. Passing `vars` sorted by name and an empty
/// template gives the bytes `virt-fw-vars --output` writes (it sorts by name).
///
/// Errors: the template does not parse, its free space is not all 0xFF, a variable is
/// malformed or given twice, or the variables do not fit ([`VarStoreError::StoreFull`]).
pub fn enroll(template: &[u8], vars: &[Variable]) -> Result<Vec<u8>> {
    let l = layout(template)?;
    live(template, &l)?; // refuse what `parse` refuses
    let mut names = Vec::with_capacity(vars.len());
    let mut blob = Vec::new();
    for v in vars {
        blob.extend(encode(v)?);
        let name = name_bytes(&v.name);
        if names.iter().any(|(n, g)| *n == name && *g == v.guid) {
            return Err(input_err(v, "given twice"));
        }
        names.push((name, v.guid));
    }
    // The last entry's alignment padding may reach past an unaligned store end.
    let start = l.free.min(l.end);
    let free = &template[start..l.end];
    if let Some(i) = free.iter().position(|&b| b != 0xff) {
        return Err(VarStoreError::NotErased {
            offset: start + i,
            byte: free[i],
        });
    }
    if blob.len() > free.len() {
        let (offset, need, available) = (start, blob.len(), free.len());
        return Err(VarStoreError::StoreFull {
            offset,
            need,
            available,
        });
    }
    let mut out = template.to_vec();
    for h in &l.headers {
        let live = h.state == VAR_ADDED || h.state == VAR_ADDED & VAR_IN_DELETED_TRANSITION;
        let name = &template[h.name.clone()];
        if live && names.iter().any(|(n, g)| *g == h.guid && n[..] == *name) {
            out[h.offset + 2] &= VAR_IN_DELETED_TRANSITION & VAR_DELETED;
        }
    }
    out[start..start + blob.len()].copy_from_slice(&blob);
    Ok(out)
}

/// The two OVMF switches `virt-fw-vars --secure-boot` sets next to the keys (NV | BS, no time
/// stamp): `SecureBootEnable = 1` (OVMF's `SecureBootConfigDxe` setting) and `CustomMode = 0`.
/// With PK enrolled, the firmware then reports `SecureBoot = 1` and enforces.
pub fn secure_boot_switches() -> Vec<Variable> {
    let switch = |name: &str, guid: Guid, value: u8| Variable {
        name: name.to_string(),
        guid,
        attributes: super::ATTR_NON_VOLATILE | super::ATTR_BOOTSERVICE_ACCESS,
        timestamp: EfiTime::default(),
        data: vec![value],
    };
    vec![
        switch("SecureBootEnable", EFI_SECURE_BOOT_ENABLE_DISABLE, 1),
        switch("CustomMode", EFI_CUSTOM_MODE_ENABLE, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::{EFI_GLOBAL_VARIABLE as GLOBAL, EFI_IMAGE_SECURITY_DATABASE as SECDB};
    use super::*;

    const V: usize = 0x64; // the first variable header

    /// An 8 KiB NV volume: 0x48-byte FV header, a store of `0x1000 - 0x48` bytes, then a
    /// 4 KiB "FTW area" holding a pattern that must survive.
    fn template() -> Vec<u8> {
        let mut f = vec![0xffu8; 0x2000];
        f[..0x48].fill(0);
        f[16..32].copy_from_slice(&EFI_SYSTEM_NV_DATA_FV.0);
        f[32..34].copy_from_slice(&[0, 0x20]); // FvLength 0x2000
        f[40..52].copy_from_slice(b"_FVH\xff\xfe\x04\x00\x48\x00\x00\x00");
        f[55] = 2;
        f[56..64].copy_from_slice(&[2, 0, 0, 0, 0, 0x10, 0, 0]);
        fix_checksum(&mut f);
        f[0x48..0x58].copy_from_slice(&EFI_AUTHENTICATED_VARIABLE.0);
        f[0x58..0x60].copy_from_slice(&[0xb8, 0x0f, 0, 0, 0x5a, 0xfe, 0, 0]); // Size 0xfb8
        f[0x60..0x64].fill(0);
        (0x1000..0x2000).for_each(|i| f[i] = i as u8);
        f
    }

    fn fix_checksum(f: &mut [u8]) {
        f[50..52].fill(0);
        let sum = header_sum(&f[..0x48]).wrapping_neg();
        f[50..52].copy_from_slice(&sum.to_le_bytes());
    }

    fn var(name: &str, guid: Guid, data: &[u8]) -> Variable {
        let timestamp = EfiTime::from_unix(1_262_304_000); // 2010-01-01
        let (name, data) = (name.into(), data.to_vec());
        Variable {
            name,
            guid,
            attributes: 0x27,
            timestamp,
            data,
        }
    }

    #[test]
    fn round_trip_keeps_everything_else() {
        let t = template();
        assert_eq!(parse(&t).unwrap(), vec![]);
        let vars = [var("PK", GLOBAL, b"pk!"), var("db", SECDB, &[7; 9])];
        let out = enroll(&t, &vars).unwrap();
        assert_eq!(out.len(), t.len());
        assert_eq!(parse(&out).unwrap(), vars);
        assert_eq!((&out[..0x64], &out[0x1000..]), (&t[..0x64], &t[0x1000..]));
        // PK: 60-byte header + 6-byte name + 3 data bytes, padded with 0xff to 72.
        assert_eq!(out[0x64..0x68], [0xaa, 0x55, 0x3f, 0]);
        assert_eq!(out[V + 16..V + 19], [0xda, 0x07, 1]); // 2010-01-01
        assert_eq!(out[V + 36..V + 44], [6, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(out[V + 60..V + 66], *b"P\0K\0\0\0");
        assert_eq!(out[V + 68..V + 74], [b'!', 0xff, 0xff, 0xff, 0xaa, 0x55]);
        assert_eq!(enroll(&t, &vars).unwrap(), out, "deterministic");
        // A half-written header (StartId only, the rest 0xff) counts as 60 bytes, as in edk2.
        let out = enroll(&with(&t, 0x64, &[0xaa, 0x55]), &vars[..1]).unwrap();
        assert_eq!(parse(&out).unwrap(), vec![vars[0].clone()]);
        assert_eq!(out[0xa0..0xa3], [0xaa, 0x55, 0x3f]);
    }

    #[test]
    fn replacing_marks_the_old_entry_deleted() {
        let (a, b) = (var("KEK", GLOBAL, b"old"), var("KEK", SECDB, b"other guid"));
        let one = enroll(&template(), &[a, b.clone()]).unwrap();
        let a2 = var("KEK", GLOBAL, b"new data");
        let two = enroll(&one, std::slice::from_ref(&a2)).unwrap();
        assert_eq!(parse(&two).unwrap(), [b.clone(), a2.clone()]);
        assert_eq!(two[V + 2], 0x3c);
        // b's state: 0x7f (header only) and 0x3e (in deleted transition) are not live, and
        // enroll retires a 0x3e twin too.
        let b_state = V + 72 + 2;
        assert_eq!(
            parse(&with(&two, b_state, &[0x7f])).unwrap(),
            vec![a2.clone()]
        );
        let f = with(&two, b_state, &[0x3e]);
        assert_eq!(parse(&f).unwrap(), vec![a2.clone()]);
        let f = enroll(&f, std::slice::from_ref(&b)).unwrap();
        assert_eq!((f[b_state], parse(&f).unwrap()), (0x3c, vec![a2, b]));
        let dup = enroll(&two, &[var("x", GLOBAL, b""), var("x", GLOBAL, b"")]);
        assert!(dup.unwrap_err().to_string().ends_with("given twice"));
        assert!(enroll(&two, &[var("a\0", GLOBAL, b"")]).is_err());
    }

    #[test]
    fn store_full() {
        let t = template();
        // 0x1000 - 0x64 = 3996 free bytes: 60 + 4 + 3932 fits exactly, one more byte does not.
        assert!(enroll(&t, &[var("a", GLOBAL, &[0; 3932])]).is_ok());
        let e = enroll(&t, &[var("a", GLOBAL, &[0; 3933])]).unwrap_err();
        let msg = "offset 0x64: variable store full: 4000 bytes needed, 3996 free";
        assert_eq!(e.to_string(), msg);
    }

    fn with(good: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut f = good.to_vec();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        f
    }

    #[test]
    fn corrupt_inputs_name_the_offset() {
        let g = enroll(&template(), &[var("PK", GLOBAL, b"x")]).unwrap();
        let check = |f: Vec<u8>, offset: usize, what: &str| {
            assert!(enroll(&f, &[]).is_err(), "{what}");
            let e = parse(&f).unwrap_err();
            assert_eq!(e.offset(), Some(offset), "{e}");
            let (msg, at) = (e.to_string(), format!("offset {offset:#x}: "));
            assert!(msg.starts_with(&at) && msg.contains(what), "{e}");
        };
        check(g[..0x2a].to_vec(), 0x28, "4 bytes, the input has only 42");
        check(with(&g, 40, b"X"), 0x28, "Signature is [58, 46");
        check(with(&g, 17, b"X"), 0x10, "FileSystemGuid");
        check(with(&g, 60, b"X"), 0x32, "16-bit header sum");
        check(g[..0x1000].to_vec(), 0x20, "FvLength 0x2000");
        check(with(&g, 0x48, &EFI_VARIABLE.0), 0x48, "non-authenticated");
        check(with(&g, 0x48, b"X"), 0x48, "store header: Signature");
        check(with(&g, 0x58, &[0, 0x20]), 0x58, "Size 0x2000");
        check(with(&g, 0x5c, &[0x5b]), 0x5c, "Format is 0x5b");
        check(with(&g, V + 36, &[0, 0xf0]), V, "NameSize 0xf000 + Data");
        check(with(&g, V + 40, &[0, 0xf0]), V, "DataSize 0xf000 run");
        check(with(&g, V + 40, &[0xf6; 4]), V, "DataSize 0xf6f6f6f6");
        check(with(&g, V + 60, &[0]), V, "not exactly NUL-terminated");
        let mut f = with(&g, 0x58, &[0x48, 0]); // Size 0x48: the store ends inside the PK header
        fix_checksum(&mut f);
        check(f, V, "the header runs past the store end 0x90");
        // A non-0x55AA StartId ends the list; enroll then refuses the non-erased rest.
        let f = with(&g, V, &[0]);
        assert_eq!(parse(&f).unwrap(), vec![]);
        let e = enroll(&f, &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("offset 0x64: free space holds 0x00, not"),
            "{e}"
        );
    }

    #[test]
    fn mutated_and_truncated_inputs_never_panic() {
        let vars = [var("PK", GLOBAL, b"x"), var("db", SECDB, b"y")];
        let good = enroll(&template(), &vars).unwrap();
        for len in 0..0x120 {
            assert!(parse(&good[..len]).is_err());
            let mut f = good[..len].to_vec(); // ... also when FvLength claims the cut length
            if let Some(l) = f.get_mut(32..40) {
                l.copy_from_slice(&(len as u64).to_le_bytes());
            }
            assert!(parse(&f).is_err());
        }
        let mut f = with(&good[..0x1000], 32, &[0, 0x10]); // FvLength 0x1000, one block
        f[56] = 1;
        fix_checksum(&mut f);
        assert_eq!(parse(&f).unwrap().len(), 2);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut m = f.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                m[(seed >> 32) as usize % 0x120] = seed as u8;
            }
            fix_checksum(&mut m);
            let _ = parse(&m);
            let _ = enroll(&m, &[var("PK", GLOBAL, b"z")]);
        }
    }

    #[test]
    fn debian_ms_vars() {
        let path = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
        let Ok(f) = std::fs::read(path) else {
            return eprintln!("skipping: {path} is missing");
        };
        let vars = parse(&f).unwrap();
        let keys = [("PK", GLOBAL), ("KEK", GLOBAL), ("db", SECDB)];
        for (name, guid) in keys.into_iter().chain([("dbx", SECDB)]) {
            let v: Vec<_> = vars.iter().filter(|v| v.name == name).collect();
            assert_eq!(v.len(), 1, "{name}");
            assert_eq!((v[0].guid, v[0].attributes), (guid, 0x27), "{name}");
            // An EFI_SIGNATURE_LIST: its SignatureListSize (bytes 16..20) fits in the data.
            let size = u32::from_le_bytes(v[0].data[16..20].try_into().unwrap()) as usize;
            assert!(size > 28 && size <= v[0].data.len(), "{name}");
        }
        let sbe = vars.iter().find(|v| v.name == "SecureBootEnable").unwrap();
        let sbe = (sbe.guid, sbe.attributes, &sbe.data[..]);
        assert_eq!(sbe, (EFI_SECURE_BOOT_ENABLE_DISABLE, 3, &[1][..]));
        // Re-enrolling PK leaves one live PK, appended last, and the FTW area intact.
        let out = enroll(&f, &[var("PK", GLOBAL, b"new")]).unwrap();
        let again = parse(&out).unwrap();
        assert_eq!(again.iter().filter(|v| v.name == "PK").count(), 1);
        assert_eq!(
            (again.len(), &again[vars.len() - 1].data),
            (vars.len(), &b"new".into())
        );
        assert_eq!(out[0x40000..], f[0x40000..]);
    }
}
