#!/usr/bin/env bash
# `nodeimg measure uki` on a ~100 MB UKI next to `systemd-measure calculate` on the same UKI's
# sections (best of N, page cache warm). The UKI: ukify 257 + Debian 257 stub + the fixture
# kernel + an 86 MiB random initrd. nodeimg computes PCR 4 (Authenticode of UKI and kernel), 9
# and 11; systemd-measure only PCR 11 — roughly half the bytes to hash.
# Needs scripts/fetch-stubs.sh (stubs, kernel, ukify) and python3-pefile.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BENCH_DIR:-$PWD/target/bench-measure} N=${BENCH_RUNS:-5}
T=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$B"
cargo build --release -q --locked -p builder --bin nodeimg
nodeimg=$T/release/nodeimg sm=/usr/lib/systemd/systemd-measure

if [ ! -s "$B/uki.efi" ]; then
  head -c $((86 << 20)) /dev/urandom > "$B/initrd"
  /usr/bin/python3 .cache/ukify/usr/bin/ukify build --stub .cache/stubs/257/linuxx64.efi.stub \
    --linux .cache/kernel/vmlinuz --initrd "$B/initrd" --cmdline "console=ttyS0 panic=-1" \
    --os-release "ID=bench" --uname bench --output "$B/uki.efi" >/dev/null
fi
/usr/bin/python3 - "$B" <<'PY'
import pefile, sys
d = sys.argv[1]
pe = pefile.PE(f"{d}/uki.efi")
for s in pe.sections:
    n = s.Name.rstrip(b"\0").decode()
    if n in (".linux", ".osrel", ".cmdline", ".initrd"):
        open(f"{d}/{n[1:]}", "wb").write(s.get_data()[: s.Misc_VirtualSize])
PY
cat "$B"/* > /dev/null

# best CMD…: the fastest wall-clock time of N runs, and that run's user+sys CPU seconds
best() {
  local s=999999 c=0 t f
  f=$(mktemp)
  for _ in $(seq "$N"); do
    /usr/bin/time -o "$f" -f '%e %U %S' "$@" >/dev/null 2>&1 || { echo "bench-measure.sh: failed: $*" >&2; exit 1; }
    t=$(tail -n1 "$f")
    if awk -v a="${t%% *}" -v b="$s" 'BEGIN{exit !(a<b)}'; then
      s=${t%% *} c=$(awk -v u="$(echo "$t" | cut -d' ' -f2)" -v y="$(echo "$t" | cut -d' ' -f3)" 'BEGIN{printf "%.2f", u+y}')
    fi
  done
  rm -f "$f"
  echo "$s $c"
}

size=$(stat -c %s "$B/uki.efi")
read -r both both_cpu < <(best "$nodeimg" measure uki "$B/uki.efi" --bank sha256,sha384)
read -r one one_cpu < <(best "$nodeimg" measure uki "$B/uki.efi" --bank sha256)
read -r ref ref_cpu < <(best "$sm" calculate --linux="$B/linux" --osrel="$B/osrel" --cmdline="$B/cmdline" \
  --initrd="$B/initrd" --bank=sha256 --bank=sha384)
echo "| $((size >> 20)) MiB UKI, $(nproc) cores, best of $N | wall s | CPU s |"
echo "|---|---|---|"
echo "| nodeimg measure uki (PCR 4+9+11, sha256+sha384) | $both | $both_cpu |"
echo "| nodeimg measure uki --bank sha256 | $one | $one_cpu |"
echo "| systemd-measure calculate (PCR 11 only, sha256+sha384) | $ref | $ref_cpu |"
