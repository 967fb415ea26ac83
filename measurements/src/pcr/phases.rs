//! PCR 11 after the boot phases systemd's `systemd-pcrphase` units extend (`uki-pcr-verity.md`
//! §4.4), as `systemd-measure calculate` lists them: each phase path is a `:`-separated list of
//! words, each extended as `H(word)` (no NUL) on top of the stub's PCR 11 value.

use super::Digest;

/// The phase paths `systemd-measure calculate` reports by default.
pub const DEFAULT_PHASE_PATHS: [&str; 4] = [
    "enter-initrd",
    "enter-initrd:leave-initrd",
    "enter-initrd:leave-initrd:sysinit",
    "enter-initrd:leave-initrd:sysinit:ready",
];

/// A phase path such as `enter-initrd:leave-initrd`; `""` (or `":"`) is the empty path.
pub type PhasePath = str;

/// PCR 11 after each phase path, starting from the stub's value `pcr11`. Empty words are
/// dropped, as systemd-measure does; the result keeps the order of `paths`.
pub fn phase_values(pcr11: Digest, paths: &[&PhasePath]) -> Vec<(String, Digest)> {
    let bank = pcr11.bank();
    paths
        .iter()
        .map(|path| {
            let value = path
                .split(':')
                .filter(|w| !w.is_empty())
                .fold(pcr11, |p, w| p.extend(&bank.hash(w.as_bytes())));
            (path.to_string(), value)
        })
        .collect()
}

/// PCR 11 as the stub of `family` leaves it, from section contents (as `systemd-measure
/// calculate --linux=… --osrel=… …` computes it): sections in the stub's measurement order,
/// each as `H(name ‖ NUL)` then `H(contents)`; empty and unmeasured sections are skipped.
pub fn pcr11_from_contents(
    family: super::StubFamily,
    sections: &[(&str, &[u8])],
    bank: super::Bank,
) -> Digest {
    family
        .pcr11_order()
        .iter()
        .filter_map(|name| sections.iter().find(|(n, d)| n == name && !d.is_empty()))
        .fold(bank.zero(), |p, (name, data)| {
            let mut with_nul = name.as_bytes().to_vec();
            with_nul.push(0);
            p.extend(&bank.hash(&with_nul)).extend(&bank.hash(data))
        })
}
