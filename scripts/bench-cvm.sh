#!/usr/bin/env bash
# Times `nodeimg measure snp` (release build) against sev-snp-measure on the same arguments:
# SEV-SNP, 64 vCPUs, a 4 MiB firmware image. Prints the median and minimum wall time of each
# over RUNS runs (default 21) and checks that both print the same digest.
#
#   scripts/bench-cvm.sh [FIRMWARE]
#
# Without FIRMWARE the image is Debian's /usr/share/ovmf/OVMF.fd (2 MiB, with SEV metadata)
# front-padded with 2 MiB of zeros to 4 MiB: the SEV metadata and footer are found from the
# end, so every stage of the computation runs. The target is ≤ 20 ms for nodeimg.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-21}
target=${CARGO_TARGET_DIR:-$repo/target}
cargo build -q --release -p builder --bin nodeimg --manifest-path "$repo/Cargo.toml"
nodeimg=$target/release/nodeimg
command -v sev-snp-measure >/dev/null || { echo "bench-cvm: sev-snp-measure is not installed (pip install sev-snp-measure==0.0.13)" >&2; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fw=${1:-}
if [ -z "$fw" ]; then
  fw=$tmp/OVMF-4M.fd
  { head -c $((2 << 20)) /dev/zero; cat /usr/share/ovmf/OVMF.fd; } > "$fw"
fi
args=(--mode snp --ovmf "$fw" --vcpus 64 --vcpu-type EPYC-Milan --vmm-type QEMU --guest-features 0x1)

# time_cmd NAME CMD...: prints "NAME median_ms min_ms" over $runs runs (after one warm-up run).
time_cmd() {
  local name=$1; shift
  "$@" >/dev/null
  local t=()
  for _ in $(seq "$runs"); do
    local a b; a=$(date +%s%N); "$@" >/dev/null; b=$(date +%s%N)
    t+=($(( (b - a) / 1000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n | awk -v n="$name" '{v[NR]=$1} END {printf "%-16s median %7.2f ms   min %7.2f ms   (%d runs)\n", n, v[int((NR+1)/2)]/1000, v[1]/1000, NR}'
}

ours=$("$nodeimg" measure snp "${args[@]}")
theirs=$(sev-snp-measure "${args[@]}")
[ "$ours" = "$theirs" ] || { echo "bench-cvm: digests differ: nodeimg $ours, sev-snp-measure $theirs" >&2; exit 1; }
echo "firmware: $(stat -c %s "$fw") bytes; digest $ours"
time_cmd nodeimg "$nodeimg" measure snp "${args[@]}"
time_cmd sev-snp-measure sev-snp-measure "${args[@]}"
