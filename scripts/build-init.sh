#!/usr/bin/env bash
# Builds the static nodeimg-init (PID 1 of the initrd) where `nodeimg build` finds it:
# target/x86_64-unknown-linux-gnu/release/nodeimg-init.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$PWD=/nodeimg --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
  cargo build --release --locked -p nodeimg-init --target x86_64-unknown-linux-gnu
