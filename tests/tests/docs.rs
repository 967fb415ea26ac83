//! The shell blocks (```sh) of README.md and docs/*.md run as written. The cheap ones run here
//! (with `nodeimg` on PATH, in a scratch directory holding a fixture `image.toml`); the expensive
//! ones are listed in `ELSEWHERE` with what runs them. A block in neither list fails the test, so
//! a new or edited block cannot go unchecked.

use std::path::Path;
use std::process::Command;

use nodeimg_tests::*;

/// Blocks run by something else (matched by their whole text).
const ELSEWHERE: &[(&str, &str)] = &[
    (
        "scripts/setup.sh && cargo run --release -- build -o out",
        "scripts/first-run.sh (test.sh, CI), verbatim in a clean clone",
    ),
    (
        "cargo run --release -- boot out/disk.raw --tpm --manifest out/manifest.json --expect \"Reached target multi-user.target\"",
        "scripts/first-run.sh (test.sh, CI), verbatim in a clean clone",
    ),
    ("scripts/test.sh", ".ci/run"),
    (
        r#"# keyless in GitHub Actions (ambient token), public-good instance
nodeimg sign out/manifest.json --keyless
nodeimg verify out/manifest.json \
    --certificate-identity https://github.com/acme/images/.github/workflows/release.yml@refs/heads/main \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com
cosign verify-blob-attestation --type https://nodeimg.dev/measurements/v1 \
    --certificate-identity … --certificate-oidc-issuer … \
    --bundle out/manifest.sigstore.json out/manifest.json

# a private instance
nodeimg sign out/manifest.json --keyless --identity-token-file token \
    --signing-config signing_config.json --trusted-root trusted_root.json
# managed key, published
nodeimg sign out/manifest.json --key signing.key --tlog-upload
nodeimg verify out/manifest.json --key signing.key.pub --require-tlog
cosign verify-blob-attestation --key signing.key.pub --type https://nodeimg.dev/measurements/v1 \
    --bundle out/manifest.sigstore.json out/manifest.json            # no --insecure-ignore-tlog"#,
        "needs the public-good Sigstore services and a CI identity (no internet here); the same \
         sign/verify/cosign commands run against a local Sigstore stack in \
         tests/tests/sigstore_services.rs",
    ),
    (
        "BENCH_RUNS=3 scripts/bench.sh",
        "a benchmark run by hand for the README's numbers (needs ~15 minutes)",
    ),
];

/// Blocks run here, in this order, in one scratch directory: (file, first line).
const RUN_HERE: &[(&str, &str)] = &[
    ("docs/signing.md", "nodeimg keygen -o signing.key"),
    ("docs/signing.md", "echo '{\"mediaType\""),
    (
        "docs/signing.md",
        "cosign import-key-pair --key signing.key",
    ),
];

/// The README's Secure Boot walk-through, run by its own test (it boots QEMU).
const SECURE_BOOT_BLOCK: (&str, &str) = ("README.md", "nodeimg keygen --secure-boot sb-keys");

/// Every ```sh block of `file` (repository-relative).
fn sh_blocks(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match (&mut cur, line.trim_end()) {
            (None, "```sh") => cur = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(b.trim_end().to_string());
                cur = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_shell_block_in_the_docs_is_checked_somewhere() {
    let mut unchecked = Vec::new();
    for file in doc_files() {
        for b in sh_blocks(&file) {
            let here = RUN_HERE
                .iter()
                .chain(std::iter::once(&SECURE_BOOT_BLOCK))
                .any(|(f, first)| *f == file && b.starts_with(first));
            let elsewhere = ELSEWHERE.iter().any(|(text, _)| *text == b);
            if !here && !elsewhere {
                unchecked.push(format!("{file}:\n{b}"));
            }
        }
    }
    assert!(
        unchecked.is_empty(),
        "shell blocks that no test runs (add them to RUN_HERE or ELSEWHERE in tests/tests/docs.rs):\n\n{}",
        unchecked.join("\n\n")
    );
    // And the README's first command is what first-run.sh extracts.
    let first = &sh_blocks("README.md")[0];
    assert_eq!(
        first, ELSEWHERE[0].0,
        "README's first command changed: update first-run.sh's check"
    );
}

#[test]
fn the_signing_docs_blocks_run_as_written() {
    let Some(tar) = fixture_tar() else { return };
    if !have_tool("cosign") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    fixture_config(d.path(), &tar, "\n[signing]\nkey = \"signing.key\"\n");
    let path = path_with_nodeimg();
    for (file, first) in RUN_HERE {
        let block = block(file, first);
        let out = run_block(d.path(), &path, &block);
        assert_ok(&out, &format!("{file} block:\n{block}\n"));
    }
    // The blocks did what they say: a signed build, a cosign bundle nodeimg accepted.
    for f in [
        "out/manifest.sigstore.json",
        "att.json",
        "sig.json",
        "trusted_root.json",
    ] {
        assert!(d.path().join(f).is_file(), "{f} missing");
    }
}

#[test]
fn the_secure_boot_readme_block_runs_as_written() {
    let Some(tar) = fixture_tar() else { return };
    if !have_tool("qemu-system-x86_64") || !have_tool("swtpm") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    fixture_config(d.path(), &tar, "");
    let path = path_with_nodeimg();
    let (file, first) = SECURE_BOOT_BLOCK;
    let block = block(file, first);
    let out = run_block(d.path(), &path, &block);
    assert_ok(&out, &format!("{file} block:\n{block}\n"));
    let m = manifest(&d.path().join("out"));
    assert_eq!(m["secure_boot"]["enabled"], true);
    assert!(String::from_utf8_lossy(&out.stdout).contains("PCR  7 sha384 ok"));
}

/// PATH with the tested `nodeimg` first.
fn path_with_nodeimg() -> String {
    let bin_dir = nodeimg().parent().unwrap();
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The ```sh block of `file` that starts with `first`.
fn block(file: &str, first: &str) -> String {
    sh_blocks(file)
        .into_iter()
        .find(|b| b.starts_with(first))
        .unwrap_or_else(|| panic!("{file}: no ```sh block starting with {first:?}"))
}

fn run_block(dir: &Path, path: &str, block: &str) -> std::process::Output {
    Command::new("timeout")
        .args(["300", "bash", "-euo", "pipefail", "-c", block])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env("COSIGN_PASSWORD", "")
        .env_remove("NODEIMG_INIT")
        .output()
        .unwrap()
}
