//! Reading a whole input file with a size cap: user-named files (manifests, bundles, keys,
//! event logs, OCI JSON) are read into memory, so each kind has a cap well above anything real
//! and far below what would exhaust memory; a larger file is an error naming it and the cap.

use std::io::Read;
use std::path::Path;

use anyhow::{ensure, Context, Result};

/// `manifest.json`: real ones are 10–100 KiB (the event list dominates).
pub const MANIFEST_MAX: u64 = 16 << 20;
/// A Sigstore bundle: the manifest base64-encoded inside a DSSE envelope, plus JSON.
pub const BUNDLE_MAX: u64 = 32 << 20;
/// A PEM key.
pub const KEY_MAX: u64 = 64 << 10;
/// A TCG2 firmware event log: real ones are 10–100 KiB; nodeimg-init sends at most 4 MiB.
pub const EVENT_LOG_MAX: u64 = 4 << 20;
/// A PE image signed by `sign-uki`: read whole (the signature covers all of it); PE offsets
/// are 32-bit, and real UKIs are 20–200 MiB.
pub const UKI_MAX: u64 = 1 << 30;
/// Observed PCR values (`--pcrs`): a few KiB.
pub const PCRS_MAX: u64 = 1 << 20;

/// Reads `path` (`what` names it in errors) if it holds at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
    let f =
        std::fs::File::open(path).with_context(|| format!("opening {what} {}", path.display()))?;
    let mut out = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    ensure!(
        out.len() as u64 <= cap,
        "{what} {} is larger than {cap} bytes (no real one is; is it the right file?)",
        path.display()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_over_the_cap_is_refused_without_reading_it_all() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.bin");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(1 << 40).unwrap(); // 1 TiB, sparse
        let e = super::read_capped(&p, 4 << 20, "event log").unwrap_err();
        assert!(
            format!("{e:#}").contains("larger than 4194304 bytes"),
            "{e:#}"
        );
        std::fs::write(&p, b"small").unwrap();
        assert_eq!(super::read_capped(&p, 5, "x").unwrap(), b"small");
    }
}
