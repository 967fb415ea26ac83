//! What systemd-stub does, per version family: which sections it measures into PCR 11 and in
//! which order, how it finds them, how it turns `.cmdline` into the kernel's LoadOptions, and
//! which initrd it hands to the kernel. Read from the systemd sources of the Debian builds
//! (252.39, 254.26, 257.13: `src/boot/efi/stub.c`, `pe.c`, `util.c`, `cpio.c`) and checked on
//! real boots; see `uki-pcr-verity.md` §4 and §9.

use std::borrow::Cow;

use crate::pe::{Pe, Section};

use super::cpio;
use super::hashing::Chunk;

/// A systemd-stub behaviour family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StubFamily {
    /// systemd 252: measures `.linux .osrel .cmdline .initrd .splash .dtb .pcrpkey`.
    V252,
    /// systemd 254 and 255: adds `.uname` and `.sbat`.
    V254,
    /// systemd 256: adds `.ucode`.
    V256,
    /// systemd 257: adds `.profile .dtbauto .hwids`, passes `.osrel` to the kernel as a cpio.
    V257,
}

/// How a stub finds a section by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// `memcmp` over the wanted name's length (a prefix match); the last match wins (≤ 255).
    PrefixLast,
    /// Exact name; the first match wins (256+).
    ExactFirst,
}

impl StubFamily {
    /// The family of systemd major version `major`; `None` for versions nodeimg does not model
    /// (253 is unconfirmed, 258+ map the kernel themselves).
    pub fn from_major(major: u32) -> Option<StubFamily> {
        match major {
            252 => Some(StubFamily::V252),
            254 | 255 => Some(StubFamily::V254),
            256 => Some(StubFamily::V256),
            257 => Some(StubFamily::V257),
            _ => None,
        }
    }

    /// Whether the whole model (PCR 4, 9, 11) was verified on real boots for this major
    /// version. Only PCR 11's section order is known for the others.
    pub fn verified_major(major: u32) -> bool {
        matches!(major, 252 | 254 | 257)
    }

    /// The sections measured into PCR 11, in measurement order (the stub's `UnifiedSection`
    /// enum without `.pcrsig`, which is never measured).
    pub fn pcr11_order(self) -> &'static [&'static str] {
        match self {
            StubFamily::V252 => &[
                ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey",
            ],
            StubFamily::V254 => &[
                ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".uname", ".sbat",
                ".pcrpkey",
            ],
            StubFamily::V256 => &[
                ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname",
                ".sbat", ".pcrpkey",
            ],
            StubFamily::V257 => &[
                ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname",
                ".sbat", ".pcrpkey", ".profile", ".dtbauto", ".hwids",
            ],
        }
    }

    fn lookup(self) -> Lookup {
        match self {
            StubFamily::V252 | StubFamily::V254 => Lookup::PrefixLast,
            StubFamily::V256 | StubFamily::V257 => Lookup::ExactFirst,
        }
    }

    /// The section the stub uses for `name`, found the way this stub looks it up.
    pub fn find<'p>(self, pe: &'p Pe<'_>, name: &str) -> Option<&'p Section> {
        let want = name.as_bytes();
        let found = match self.lookup() {
            Lookup::PrefixLast => pe
                .sections
                .iter()
                .rev()
                .find(|s| s.raw_name.starts_with(want)),
            Lookup::ExactFirst => pe.sections.iter().find(|s| s.name() == want),
        };
        // The stubs treat a section with VirtualSize 0 as absent.
        found.filter(|s| s.virtual_size > 0)
    }

    /// The kernel command line the stub hands over when it uses `.cmdline` (Secure Boot off
    /// and no usable LoadOptions from the firmware): UTF-8 → UTF-16 up to the first NUL, then
    /// cleaned up as this stub version does. `None` when there is no `.cmdline`.
    pub fn cmdline_from_section(self, section: Option<&[u8]>) -> Option<Vec<u16>> {
        let bytes = section.filter(|b| !b.is_empty())?;
        let mut units = utf8_to_utf16_like_stub(bytes);
        if let Some(nul) = units.iter().position(|&u| u == 0) {
            units.truncate(nul);
        }
        Some(match self {
            StubFamily::V252 | StubFamily::V254 => mangle_252(units),
            StubFamily::V256 | StubFamily::V257 => mangle_257(units),
        })
    }

    /// The pieces of the initrd the stub registers for the kernel (LoadFile2), from the UKI
    /// sections alone; `None` when the kernel gets no initrd. Credentials, sysexts, confexts
    /// and addons from the ESP are not part of a nodeimg boot and not modelled.
    pub(crate) fn initrd_chunks<'a>(self, s: &UkiSections<'a>) -> Option<Vec<Chunk<'a>>> {
        let cpio = |data: &Option<Memory<'a>>, name: &str| {
            data.as_ref()
                .map(|m| Cow::Owned(cpio::pack_literal(&m.to_vec(), ".extra", name)))
        };
        match self {
            StubFamily::V252 | StubFamily::V254 => {
                let extras: Vec<Cow<'a, [u8]>> = [
                    cpio(&s.pcrsig, "tpm2-pcr-signature.json"),
                    cpio(&s.pcrpkey, "tpm2-pcr-public-key.pem"),
                ]
                .into_iter()
                .flatten()
                .collect();
                if extras.is_empty() {
                    return s.initrd.as_ref().map(|m| m.chunks());
                }
                let mut out = Vec::new();
                if let Some(m) = &s.initrd {
                    out.extend(m.chunks());
                    out.push(Chunk::Zeros(pad4(m.len)));
                }
                out.extend(extras.into_iter().map(Chunk::Bytes));
                Some(out)
            }
            StubFamily::V256 | StubFamily::V257 => {
                let mut pieces: Vec<Vec<Chunk<'a>>> = Vec::new();
                let mut lens = Vec::new();
                for m in [&s.ucode, &s.initrd].into_iter().flatten() {
                    pieces.push(m.chunks());
                    lens.push(m.len);
                }
                for c in [
                    cpio(&s.pcrsig, "tpm2-pcr-signature.json"),
                    cpio(&s.pcrpkey, "tpm2-pcr-public-key.pem"),
                    cpio(&s.osrel, "os-release"),
                ]
                .into_iter()
                .flatten()
                {
                    lens.push(c.len());
                    pieces.push(vec![Chunk::Bytes(c)]);
                }
                match pieces.len() {
                    0 => None,
                    1 => pieces.pop(),
                    _ => Some(
                        pieces
                            .into_iter()
                            .zip(lens)
                            .flat_map(|(mut p, len)| {
                                p.push(Chunk::Zeros(pad4(len)));
                                p
                            })
                            .collect(),
                    ),
                }
            }
        }
    }
}

fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// A section as the loaded image holds it: its file data, then zeros up to `VirtualSize`.
#[derive(Debug, Clone)]
pub(crate) struct Memory<'a> {
    /// `min(VirtualSize, SizeOfRawData)` bytes from the file.
    pub data: &'a [u8],
    /// `VirtualSize`.
    pub len: usize,
}

impl<'a> Memory<'a> {
    /// The section `s` of `pe` as loaded into memory.
    pub fn of(pe: &Pe<'a>, s: &Section) -> Result<Self, crate::pe::PeError> {
        Ok(Memory {
            data: pe.contents(s)?,
            len: s.virtual_size as usize,
        })
    }

    /// The bytes to hash, as chunks.
    pub fn chunks(&self) -> Vec<Chunk<'a>> {
        let mut v = vec![Chunk::Bytes(Cow::Borrowed(self.data))];
        if self.len > self.data.len() {
            v.push(Chunk::Zeros(self.len - self.data.len()));
        }
        v
    }

    /// The bytes, copied (for small sections).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = self.data.to_vec();
        v.resize(self.len, 0);
        v
    }
}

/// The UKI sections that shape what the stub hands to the kernel.
#[derive(Debug, Clone, Default)]
pub(crate) struct UkiSections<'a> {
    pub initrd: Option<Memory<'a>>,
    pub ucode: Option<Memory<'a>>,
    pub osrel: Option<Memory<'a>>,
    pub pcrsig: Option<Memory<'a>>,
    pub pcrpkey: Option<Memory<'a>>,
}

/// systemd's `utf8_to_unichar` + `xstrn8_to_16` (identical in 252, 254 and 257): decodes up to
/// the first NUL byte or the end; invalid sequences are skipped whole, code points above
/// U+FFFF and surrogates are dropped, overlong forms are accepted.
fn utf8_to_utf16_like_stub(mut s: &[u8]) -> Vec<u16> {
    let mut out = Vec::with_capacity(s.len());
    while let Some(&first) = s.first() {
        if first == 0 {
            break;
        }
        let (len, value) = decode_one(s);
        s = s.get(len..).unwrap_or(&[]);
        if let Some(v) = value {
            if v <= 0xd7ff || (0xe000..=0xffff).contains(&v) {
                out.push(v as u16);
            }
        }
    }
    out
}

/// One step of systemd's `utf8_to_unichar`: (bytes consumed, code point or None if invalid).
fn decode_one(s: &[u8]) -> (usize, Option<u32>) {
    let b0 = s[0];
    let (len, init) = match b0 {
        b if b & 0x80 == 0 => return (1, Some(u32::from(b))),
        b if b & 0xe0 == 0xc0 => (2, b & 0x1f),
        b if b & 0xf0 == 0xe0 => (3, b & 0x0f),
        b if b & 0xf8 == 0xf0 => (4, b & 0x07),
        b if b & 0xfc == 0xf8 => (5, b & 0x03),
        b if b & 0xfe == 0xfc => (6, b & 0x01),
        _ => return (1, None),
    };
    if len > s.len() {
        return (len, None);
    }
    let mut v = u32::from(init);
    for &b in &s[1..len] {
        if b & 0xc0 != 0x80 {
            return (len, None);
        }
        v = (v << 6) | u32::from(b & 0x3f);
    }
    (len, Some(v))
}

/// 252/254 `mangle_stub_cmdline`: control characters (≤ 0x1F) become spaces, trailing spaces
/// are dropped.
fn mangle_252(mut units: Vec<u16>) -> Vec<u16> {
    for u in units.iter_mut() {
        if *u <= 0x1f {
            *u = u16::from(b' ');
        }
    }
    while units.last() == Some(&u16::from(b' ')) {
        units.pop();
    }
    units
}

/// 257 `mangle_stub_cmdline`: characters ≤ 0x20 and 0x7F count as whitespace; leading ones
/// are dropped, inner ones become one space each, trailing ones are dropped.
fn mangle_257(units: Vec<u16>) -> Vec<u16> {
    let ws = |u: u16| u <= 0x20 || u == 0x7f;
    let start = units.iter().position(|&u| !ws(u)).unwrap_or(units.len());
    let end = units.iter().rposition(|&u| !ws(u)).map_or(start, |i| i + 1);
    units[start..end.max(start)]
        .iter()
        .map(|&u| if ws(u) { u16::from(b' ') } else { u })
        .collect()
}

/// The command line the stub of `family` hands over for a `.cmdline` section holding
/// `section`, as text (lossy for unpaired surrogates, which the stub cannot produce).
pub fn mangle_cmdline(family: StubFamily, section: &[u8]) -> Option<String> {
    family
        .cmdline_from_section(Some(section))
        .map(|u| String::from_utf16_lossy(&u))
}

/// The LoadOptions buffer for `units`: UTF-16LE plus a terminating NUL (`strsize16`).
pub(crate) fn load_options_bytes(units: &[u16]) -> Vec<u8> {
    units
        .iter()
        .chain(std::iter::once(&0u16))
        .flat_map(|u| u.to_le_bytes())
        .collect()
}
