#!/usr/bin/env bash
# Side-by-side benchmarks against the reference tools, in one run, best of N (page cache warm
# for both sides). Prints a Markdown table for the README. Needs root (reference tar -p).
#   verity: nodeimg's hasher vs `veritysetup format`, 1 GiB, outputs compared byte for byte
#   build:  `nodeimg build` vs scripts/bench-reference.sh on the ~350 MB Debian rootfs tar
#   rss:    peak RSS of `nodeimg build` for the 0.35 GB tar and a ~2 GB tar (must stay flat)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BENCH_DIR:-$PWD/target/bench} N=${BENCH_RUNS:-3}
mkdir -p "$B"
cargo build --release -q --locked -p builder --bin nodeimg --example verity-format
scripts/build-init.sh >/dev/null 2>&1
nodeimg=$PWD/target/release/nodeimg vf=$PWD/target/release/examples/verity-format
init=$PWD/target/x86_64-unknown-linux-gnu/release/nodeimg-init
rootfs=$(scripts/make-bench-rootfs.sh)

# best LABEL CMD…: runs CMD N times, prints "seconds maxrss_kib" of the fastest run
best() {
  local t s=999999 m=0 f
  f=$(mktemp)
  for _ in $(seq "$N"); do
    /usr/bin/time -o "$f" -f '%e %M' "$@" >/dev/null 2>&1 || { echo "bench.sh: failed: $*" >&2; exit 1; }
    t=$(tail -n1 "$f")
    if awk -v a="${t% *}" -v b="$s" 'BEGIN{exit !(a<b)}'; then s=${t% *} m=${t#* }; fi
  done
  rm -f "$f"
  echo "$s $m"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", b/a}'; }

salt=$(printf '%064x' 7) uuid=12345678-1234-4234-8234-123456789abc
[ -s "$B/verity.data" ] || head -c $((1 << 30)) /dev/urandom > "$B/verity.data"
cat "$B/verity.data" > /dev/null
read -r v_ours _ < <(best "$vf" "$B/verity.data" "$B/ours.hash" "$salt" "$uuid")
read -r v_ref _ < <(best veritysetup format --salt="$salt" --uuid="$uuid" "$B/verity.data" "$B/ref.hash")
cmp -s "$B/ours.hash" "$B/ref.hash" || { echo "bench.sh: verity outputs differ" >&2; exit 1; }

printf '[image]\nname = "bench"\nsource-date-epoch = 1700000000\n[rootfs]\ntar = "%s"\n[kernel]\ncmdline = ["console=ttyS0"]\n' "$rootfs" > "$B/bench.toml"
read -r b_ours b_rss < <(best env NODEIMG_INIT="$init" "$nodeimg" build "$B/bench.toml" -o "$B/out")
jq -r '.initrd.modules[]' "$B/out/manifest.json" > "$B/modules.txt"
stub=$(mktemp -d)/stub && tar -xOf "$rootfs" ./usr/lib/systemd/boot/efi/linuxx64.efi.stub > "$stub"
read -r b_ref _ < <(best scripts/bench-reference.sh "$rootfs" "$stub" "$init" "$B/modules.txt" "$B/ref")

if [ ! -s "$B/big.tar" ]; then   # the Debian tar plus 1.6 GiB of incompressible files
  mkdir -p "$B/blobs/opt/blobs"
  for i in $(seq 16); do head -c $((100 << 20)) /dev/urandom > "$B/blobs/opt/blobs/$i"; done
  cp "$rootfs" "$B/big.tar.part" && tar --append -f "$B/big.tar.part" -C "$B/blobs" ./opt && mv "$B/big.tar.part" "$B/big.tar"
fi
sed "s|$rootfs|$B/big.tar|" "$B/bench.toml" > "$B/big.toml"
read -r big_s big_rss < <(N=1 best env NODEIMG_INIT="$init" "$nodeimg" build "$B/big.toml" -o "$B/out-big")

mb() { echo $(( $(stat -c %s "$1") >> 20 )); }
echo "| benchmark (best of $N, $(nproc) cores) | nodeimg | reference | speed-up |"
echo "|---|---|---|---|"
echo "| dm-verity hash, 1 GiB (vs \`veritysetup format\`, identical output) | ${v_ours} s | ${v_ref} s | $(ratio "$v_ours" "$v_ref") |"
echo "| full build, $(mb "$rootfs") MB Debian rootfs tar (vs tar+mkfs.erofs+veritysetup+objcopy+mkfs.vfat+sfdisk) | ${b_ours} s | ${b_ref} s | $(ratio "$b_ours" "$b_ref") |"
echo "| peak RSS of \`nodeimg build\`: $(mb "$rootfs") MB tar / $(mb "$B/big.tar") MB tar | $((b_rss >> 10)) MiB / $((big_rss >> 10)) MiB | | |"
echo "| full build, $(mb "$B/big.tar") MB tar | ${big_s} s | | |"
