//! TDX `MRTD`: one SHA-384 over the `TDH.MEM.PAGE.ADD` and `TDH.MR.EXTEND` records of every
//! TDVF section, in metadata order. Only sections with the MR_EXTEND attribute contribute their
//! contents (256-byte chunks); PAGE_AUG sections contribute nothing.

use sha2::{Digest as _, Sha384};

use super::digest::Mrtd;
use super::error::{CvmError, Result};
use super::ovmf::Ovmf;
use super::tdvf::{TdxSection, ATTR_MR_EXTEND, ATTR_PAGE_AUG};

const PAGE: u64 = 4096;
const CHUNK: usize = 256;

/// The order in which PAGE.ADD and MR.EXTEND records reach the TDX module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MrtdOrder {
    /// Per page: add it, then extend its 16 chunks (upstream KVM with QEMU ≥ 9).
    #[default]
    SinglePass,
    /// Per section: add all pages, then extend all of them (Intel's QEMU 8.x TDX stack).
    TwoPass,
}

/// The MRTD of `fw` (a unified OVMF image with TDVF metadata).
pub fn mrtd(fw: &Ovmf, order: MrtdOrder) -> Result<Mrtd> {
    let meta = fw.tdx_metadata()?;
    meta.validate(fw.bytes().len())?;
    let mut h = Sha384::new();
    for (index, s) in meta.sections.iter().enumerate() {
        let data = extended_bytes(fw.bytes(), s).map_err(|why| CvmError::TdxSection {
            index,
            kind: s.kind,
            gpa: s.memory_address,
            why,
        })?;
        section(&mut h, s, data, order);
    }
    Ok(Mrtd(h.finalize().into()))
}

/// The bytes an MR_EXTEND section extends (`None` for other sections).
fn extended_bytes<'a>(
    fw: &'a [u8],
    s: &TdxSection,
) -> std::result::Result<Option<&'a [u8]>, String> {
    if s.attributes & ATTR_MR_EXTEND == 0 {
        return Ok(None);
    }
    if u64::from(s.raw_data_size) != s.memory_data_size {
        return Err(format!(
            "MR_EXTEND with MemoryDataSize {:#x} != RawDataSize {:#x} is not supported",
            s.memory_data_size, s.raw_data_size
        ));
    }
    let start = s.data_offset as usize;
    // `validate` checked DataOffset + RawDataSize against the file size.
    Ok(fw.get(start..start + s.raw_data_size as usize))
}

fn section(h: &mut Sha384, s: &TdxSection, data: Option<&[u8]>, order: MrtdOrder) {
    let pages = s.memory_data_size / PAGE;
    let add = s.attributes & ATTR_PAGE_AUG == 0;
    let gpa = |p: u64| s.memory_address + p * PAGE;
    match order {
        MrtdOrder::SinglePass => {
            for p in 0..pages {
                if add {
                    page_add(h, gpa(p));
                }
                if let Some(d) = data {
                    extend_page(h, gpa(p), d, p);
                }
            }
        }
        MrtdOrder::TwoPass => {
            if add {
                (0..pages).for_each(|p| page_add(h, gpa(p)));
            }
            if let Some(d) = data {
                (0..pages).for_each(|p| extend_page(h, gpa(p), d, p));
            }
        }
    }
}

/// A 128-byte record: ASCII operation name, zero padding, the GPA at byte 16.
fn record(op: &[u8], gpa: u64) -> [u8; 128] {
    let mut r = [0u8; 128];
    r[..op.len()].copy_from_slice(op);
    r[16..24].copy_from_slice(&gpa.to_le_bytes());
    r
}

fn page_add(h: &mut Sha384, gpa: u64) {
    h.update(record(b"MEM.PAGE.ADD", gpa));
}

fn extend_page(h: &mut Sha384, gpa: u64, data: &[u8], page: u64) {
    let start = (page * PAGE) as usize;
    let bytes = data.get(start..start + PAGE as usize).unwrap_or_default();
    for (c, chunk) in bytes.chunks_exact(CHUNK).enumerate() {
        h.update(record(b"MR.EXTEND", gpa + (c * CHUNK) as u64));
        h.update(chunk);
    }
}
