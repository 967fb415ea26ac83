//! Locating and checking the static nodeimg-init binary that becomes the initrd's `/init`.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};

/// The cargo target triple the init is built for (static glibc).
pub const INIT_TARGET: &str = "x86_64-unknown-linux-gnu";

/// `--init`, else `$NODEIMG_INIT`, else the static build in the cargo target dir this
/// executable came from, else `nodeimg-init` next to this executable.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("NODEIMG_INIT") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    // The static cross-target build first: a plain `cargo build` also leaves a dynamically
    // linked nodeimg-init next to a development nodeimg.
    let mut candidates = Vec::new();
    if let Some(target) = dir.parent() {
        for profile in ["release", "debug"] {
            candidates.push(target.join(INIT_TARGET).join(profile).join("nodeimg-init"));
        }
    }
    candidates.push(dir.join("nodeimg-init"));
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => bail!(
            "nodeimg-init not found (looked at {}); build it with scripts/build-init.sh or pass --init",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

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
}
