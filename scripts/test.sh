#!/usr/bin/env bash
# The test command: setup, then all three tiers (DESIGN.md §8).
#   tier 1: cargo test            — unit + known-answer tests, rootless, fast
#   tier 2: nodeimg-tests         — builds fixture images, cross-checks with the real tools
#   tier 3: nodeimg-tests boot*   — QEMU + OVMF boots of built images (everything under timeouts)
set -euo pipefail
cd "$(dirname "$0")/.."
# Everything is also logged, to total the test counts at the end.
log=$(mktemp)
exec > >(tee "$log") 2>&1
if [ "$(id -u)" = 0 ]; then
  scripts/setup.sh
else
  echo "test.sh: not root, skipping scripts/setup.sh (host packages must already be installed)"
fi
scripts/make-fixture.sh
scripts/fetch-stubs.sh
# AWS's PCR 4/7/12 calculator, a peer the Secure Boot tests compare with (crates.io, cached in
# target/).
nitro=target/nitro/bin/nitro-tpm-pcr-compute
[ -x "$nitro" ] || cargo install -q --locked --root target/nitro nitro-tpm-pcr-compute@1.1.2
export PATH="$PWD/target/nitro/bin:$PATH"
# Sigstore's own mock Fulcio/Rekor/TSA and sigstore-js's verifier (npm, pinned by
# tests/sigstore-mock/package-lock.json) for the keyless / tlog-upload signing tests.
if [ ! -f tests/sigstore-mock/node_modules/@sigstore/mock/package.json ]; then
  (cd tests/sigstore-mock && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== tier 1: cargo test"
# Every crate but the end-to-end one (nodeimg-init is not a default member: see Cargo.toml).
cargo test --locked --workspace --exclude nodeimg-tests

tier2=() tier3=()
for f in tests/tests/*.rs; do
  name=$(basename "$f" .rs)
  case "$name" in boot*|qemu*) tier3+=(--test "$name") ;; *) tier2+=(--test "$name") ;; esac
done
echo "== tier 2: end-to-end builds and tool cross-checks"
cargo test --locked -p nodeimg-tests "${tier2[@]}"
echo "== tier 3: QEMU boots"
timeout 2400 cargo test --locked -p nodeimg-tests "${tier3[@]}" -- --test-threads=2
echo "== first run: the README's commands, verbatim, in a clean clone"
if [ "$(id -u)" = 0 ]; then
  scripts/first-run.sh
elif [ "${NODEIMG_REQUIRE_ROOT:-}" = 1 ]; then
  echo "test.sh: the first-run check needs root (it runs the README's setup command)" >&2; exit 1
else
  echo "test.sh: not root, skipping scripts/first-run.sh"
fi
# One closing line for all tiers: the sum of cargo's "test result" lines.
awk '/^test result:/ {p += $4; f += $6} END {printf "all tiers: %d passed, %d failed\n", p, f}' "$log" \
  | sed 's/^all tiers: //'
rm -f "$log"
