//! Replays the seed corpus of the `ovmf_metadata` fuzz target (`fuzz/corpus/ovmf_metadata/`,
//! made by `scripts/make-fuzz-seeds.sh`) on stable Rust, plus a few thousand deterministic
//! mutations of every seed: errors are fine, a panic fails the test.

use std::path::PathBuf;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ovmf_metadata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("corpus file"),
            )
        })
        .collect()
}

#[test]
fn corpus_replays_without_panics() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 10,
        "seed corpus missing ({} files)",
        corpus.len()
    );
    for (name, data) in &corpus {
        eprintln!("replaying {name}");
        measurements::cvm::fuzz_ovmf_metadata(data);
    }
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_seeds_never_panic() {
    let mut rng = Rng(0x6e6f_6465_696d_6721);
    for (name, seed) in corpus() {
        for round in 0..1500 {
            let mut d = seed.clone();
            // Corrupt a few bytes near the end, where the footer table and metadata live.
            for _ in 0..1 + rng.below(4) {
                let window = d.len().min(0x800);
                let at = d.len().checked_sub(1 + rng.below(window));
                if let Some(b) = at.and_then(|at| d.get_mut(at)) {
                    *b = rng.next() as u8;
                }
            }
            if round % 7 == 0 {
                let cut = rng.below(d.len());
                d.drain(..cut);
            }
            let result = std::panic::catch_unwind(|| measurements::cvm::fuzz_ovmf_metadata(&d));
            assert!(
                result.is_ok(),
                "{name}, round {round}: panic on {}",
                hex(&d)
            );
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
