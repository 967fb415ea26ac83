//! The static nodeimg-init binary that becomes the initrd's `/init`: embedded in `nodeimg` by the
//! build script (`builder/build.rs`), or an override from `--init` / `$NODEIMG_INIT`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

/// The cargo target triple the init is built for (static glibc).
pub const INIT_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The static nodeimg-init built with this `nodeimg` (see `builder/build.rs`).
pub static EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nodeimg-init"));

/// Where the init of a build comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitSource {
    /// The copy inside this executable.
    Embedded,
    /// A file given by `--init` or `$NODEIMG_INIT`.
    File(PathBuf),
}

impl InitSource {
    /// `--init`, else `$NODEIMG_INIT`, else the embedded init.
    pub fn select(explicit: Option<&Path>) -> InitSource {
        match explicit {
            Some(p) => InitSource::File(p.to_path_buf()),
            None => match std::env::var_os("NODEIMG_INIT") {
                Some(p) if !p.is_empty() => InitSource::File(PathBuf::from(p)),
                _ => InitSource::Embedded,
            },
        }
    }

    /// The binary's bytes, checked to be a static x86-64 executable.
    pub fn load(&self) -> Result<Cow<'static, [u8]>> {
        let bytes = match self {
            InitSource::Embedded => Cow::Borrowed(EMBEDDED),
            InitSource::File(p) => Cow::Owned(
                std::fs::read(p)
                    .with_context(|| format!("reading nodeimg-init {}", p.display()))?,
            ),
        };
        check_static(&bytes).with_context(|| format!("checking nodeimg-init ({self})"))?;
        Ok(bytes)
    }
}

impl std::fmt::Display for InitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitSource::Embedded => f.write_str("embedded"),
            InitSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// SHA-256 of the embedded init, lowercase hex (computed by the build script; `--version`
/// prints it, and manifests of builds with the embedded init record it).
pub const EMBEDDED_SHA256: &str = env!("NODEIMG_INIT_SHA256");

/// Refuses anything but a static x86-64 ELF executable (a dynamic one cannot run in the initrd).
pub fn check_static(elf: &[u8]) -> Result<()> {
    ensure!(
        elf.len() >= 64 && &elf[..4] == b"\x7fELF",
        "not an ELF file"
    );
    ensure!(elf[4] == 2 && elf[5] == 1, "not a 64-bit little-endian ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    ensure!(
        u16_at(18) == 62,
        "not an x86-64 ELF (e_machine {})",
        u16_at(18)
    );
    let phoff = u64::from_le_bytes(elf[32..40].try_into()?) as usize;
    let (phentsize, phnum) = (u16_at(54) as usize, u16_at(56) as usize);
    for i in 0..phnum {
        let at = phoff
            .checked_add(i * phentsize)
            .filter(|&a| a + 4 <= elf.len());
        let Some(at) = at else {
            bail!("program header {i} is outside the file")
        };
        if u32::from_le_bytes(elf[at..at + 4].try_into()?) == 3 {
            bail!("dynamically linked (has PT_INTERP); build it static: RUSTFLAGS='-C target-feature=+crt-static' --target {INIT_TARGET}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_binaries_are_refused() {
        // The test binary itself is dynamically linked.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let e = check_static(&me).unwrap_err().to_string();
        assert!(e.contains("dynamically linked"), "{e}");
        assert!(check_static(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn the_embedded_init_is_static_and_selected_by_default() {
        check_static(EMBEDDED).unwrap();
        assert_eq!(InitSource::select(None), InitSource::Embedded);
        let p = Path::new("/x/init");
        assert_eq!(InitSource::select(Some(p)), InitSource::File(p.into()));
        use sha2::{Digest, Sha256};
        assert_eq!(EMBEDDED_SHA256, hex::encode(Sha256::digest(EMBEDDED)));
    }
}
