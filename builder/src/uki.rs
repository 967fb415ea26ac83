//! The Unified Kernel Image: systemd-stub plus `.osrel .cmdline .uname .linux .initrd` and a
//! merged `.sbat`, laid out byte-for-byte as ukify 257 does (spec §2.2, §2.3, §2.8) for the
//! Debian 252, 254 and 257 stubs; and [`read`], which lists what a UKI holds for `inspect`.

use anyhow::{ensure, Context, Result};
use measurements::pe::Pe;
use serde::Serialize;

mod layout;
pub mod sbat;

/// The payload sections of a UKI (raw bytes, stored verbatim).
#[derive(Debug, Clone, Default)]
pub struct Sections {
    /// os-release file (`.osrel`).
    pub osrel: Vec<u8>,
    /// Kernel command line (`.cmdline`), e.g. with `roothash=<hex>`; stored as given.
    pub cmdline: Vec<u8>,
    /// `uname -r` of the kernel (`.uname`), no newline.
    pub uname: Vec<u8>,
    /// The kernel EFI PE image (`.linux`); required.
    pub linux: Vec<u8>,
    /// The initrd (`.initrd`), already concatenated if there are several.
    pub initrd: Vec<u8>,
    /// User SBAT entries as for `ukify --sbat` (a leading `sbat,` header line is dropped);
    /// `None` = ukify's default `uki,1,UKI,…` entry.
    pub sbat_extra: Option<String>,
}

/// Builds a UKI from `stub` and the payload `s`, exactly as `ukify build` 257 would with
/// `--stub --linux --initrd --cmdline --os-release --uname [--sbat]`.
///
/// Empty payload sections are left out (as ukify does); the output keeps the stub's
/// `TimeDateStamp` and has `CheckSum` 0, so it depends only on the inputs.
pub fn build(stub: &[u8], s: &Sections) -> Result<Vec<u8>> {
    ensure!(!s.linux.is_empty(), "the kernel image (.linux) is empty");
    let stub_pe = Pe::parse(stub).context("parsing the systemd-stub")?;
    let kernel = match Pe::parse(&s.linux) {
        Ok(pe) => Some(pe),
        Err(e) => {
            tracing::warn!("the kernel is not a valid PE ({e}); not reading its .sbat or NX flag");
            None
        }
    };
    let sbat = sbat::merge(&stub_pe, kernel.as_ref(), s.sbat_extra.as_deref())
        .context("merging the .sbat section")?;
    let planned: Vec<(&str, &[u8])> = [
        (".osrel", &s.osrel[..]),
        (".cmdline", &s.cmdline[..]),
        (".uname", &s.uname[..]),
        (".linux", &s.linux[..]),
        (".initrd", &s.initrd[..]),
        (".sbat", sbat.as_bytes()),
    ]
    .into_iter()
    .filter(|(_, data)| !data.is_empty())
    .collect();

    let mut img = layout::Image::from_stub(stub).context("preparing the systemd-stub")?;
    img.check_header_room(planned.len())?;
    for (name, data) in planned {
        img.add(name, data)
            .with_context(|| format!("adding UKI section {name}"))?;
    }
    if let Some(k) = &kernel {
        img.inherit_nx_compat(k);
    }
    img.finish().context("writing the UKI headers")
}

/// One section of a UKI, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionInfo {
    /// Section name.
    pub name: String,
    /// Size in memory (what the stub measures).
    pub virtual_size: u32,
    /// RVA.
    pub virtual_address: u32,
    /// Size in the file.
    pub size_of_raw_data: u32,
    /// File offset of the data.
    pub pointer_to_raw_data: u32,
    /// `IMAGE_SCN_*` flags.
    pub characteristics: u32,
}

/// What a UKI holds, for `nodeimg inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UkiInfo {
    /// All sections in table order.
    pub sections: Vec<SectionInfo>,
    /// `.cmdline` as text (lossy, trailing NULs removed).
    pub cmdline: Option<String>,
    /// `.osrel` as text.
    pub osrel: Option<String>,
    /// `.uname` as text.
    pub uname: Option<String>,
    /// `.sbat` as text.
    pub sbat: Option<String>,
    /// systemd-stub version from `.sdmagic`, e.g. `257.13-1~deb13u1`.
    pub stub_version: Option<String>,
    /// Its major number, e.g. 257.
    pub stub_major: Option<u32>,
}

/// Reads the section list, the text sections and the stub version of the UKI `uki`.
pub fn read(uki: &[u8]) -> Result<UkiInfo> {
    let pe = Pe::parse(uki).context("parsing the UKI's PE headers")?;
    let text = |name: &str| -> Result<Option<String>> {
        let data = pe
            .section_data(name)
            .with_context(|| format!("reading UKI section {name}"))?;
        Ok(data.map(|d| {
            String::from_utf8_lossy(d)
                .trim_end_matches('\0')
                .to_string()
        }))
    };
    let stub = pe
        .stub_version()
        .context("reading the stub version from .sdmagic")?;
    Ok(UkiInfo {
        sections: pe.sections.iter().map(section_info).collect(),
        cmdline: text(".cmdline")?,
        osrel: text(".osrel")?,
        uname: text(".uname")?,
        sbat: text(".sbat")?,
        stub_major: stub.as_ref().map(|v| v.major),
        stub_version: stub.map(|v| v.version),
    })
}

fn section_info(s: &measurements::pe::Section) -> SectionInfo {
    SectionInfo {
        name: s.name_lossy(),
        virtual_size: s.virtual_size,
        virtual_address: s.virtual_address,
        size_of_raw_data: s.size_of_raw_data,
        pointer_to_raw_data: s.pointer_to_raw_data,
        characteristics: s.characteristics,
    }
}

#[cfg(test)]
mod tests;
