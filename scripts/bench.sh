#!/usr/bin/env bash
# The benchmark suite: nodeimg side by side with the reference tools, in one run, best of N
# (page cache warm for both sides), one Markdown table with every ratio, for the README.
#   verity:      nodeimg's hasher (and its sha2-crate path) vs `veritysetup format`, 1 GiB, outputs
#                compared byte for byte
#   build:       `nodeimg build` vs scripts/bench-reference.sh on the ~350 MB Debian rootfs tar
#                (into an empty directory, and again into the previous build's)
#   rss:         peak RSS of `nodeimg build` for the 0.35 GB tar, a ~2 GB tar and the same ~2 GB
#                as a one-layer OCI layout (must stay flat)
#   measure uki: `nodeimg measure uki` (PCR 4+9+11, both banks) vs `systemd-measure calculate`
#                (PCR 11 only, both banks) on a ~100 MB UKI made by ukify 257
#   measure snp: `nodeimg measure snp` vs sev-snp-measure 0.0.13 (64 vCPUs, 4 MiB OVMF), same
#                digest checked first
#   measure uki --pcr 11: the same work as systemd-measure (PCR 11 only, both banks)
#   formats:     `nodeimg convert` (qcow2, vmdk streamOptimized, fixed vhd) vs `qemu-img convert`
#                on the ~2 GB disk of the big build, MB/s of the raw disk. nodeimg's output is
#                durable (fsync) and hashed (its SHA-256 goes into the manifest), so qemu-img is
#                timed three ways: alone, then `sync FILE`, then also `openssl dgst -sha256 FILE`
#                (the same job: a durable file and its digest)
#   nitro:       `measure uki --bank sha384 --pcr 4,12` vs AWS's nitro-tpm-pcr-compute (PCR 4/7/12,
#                SHA-384; installed from crates.io into $B/nitro on first use)
#   floors:      per-core `openssl speed` SHA-256/SHA-384 rates: verity as a fraction of the
#                machine's SHA-256 limit (rate x cores); the build against its own floor (bytes
#                it must hash at that limit + one page-cache write of disk.raw)
#   default:     the embedded default image (mmdebstrap from the network), cold cache (an empty
#                --cache-dir each run) vs warm cache (the same cache again); outputs compared
# Needs root (the reference pipeline's `tar -p`), scripts/setup.sh's packages and
# scripts/fetch-stubs.sh's inputs. BENCH_RUNS (default 3), BENCH_DIR (default target/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BENCH_DIR:-$PWD/target/bench} N=${BENCH_RUNS:-3}
T=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$B"
cargo build --release -q --locked -p builder --bin nodeimg --example verity-format
scripts/fetch-stubs.sh >/dev/null 2>&1
nodeimg=$T/release/nodeimg vf=$T/release/examples/verity-format
init=$T/nodeimg-init/x86_64-unknown-linux-gnu/release/nodeimg-init   # builder/build.rs puts it there
rootfs=$(scripts/make-bench-rootfs.sh)
command -v sev-snp-measure >/dev/null || { echo "bench.sh: sev-snp-measure missing (scripts/setup.sh)" >&2; exit 1; }

# best CMD…: runs CMD N times; prints "seconds maxrss_kib" of the fastest run. $BEFORE, if
# set, runs (untimed) before each run.
best() {
  local t s=999999 m=0 f
  f=$(mktemp)
  for _ in $(seq "$N"); do
    [ -z "${BEFORE:-}" ] || eval "$BEFORE"
    sync   # earlier runs' dirty pages are written back before, not during, the timed run
    /usr/bin/time -o "$f" -f '%e %M' "$@" >/dev/null 2>&1 || { echo "bench.sh: failed: $*" >&2; exit 1; }
    t=$(tail -n1 "$f")
    if awk -v a="${t% *}" -v b="$s" 'BEGIN{exit !(a<b)}'; then s=${t% *} m=${t#* }; fi
  done
  rm -f "$f"
  echo "$s $m"
}
# best_ms CMD…: the fastest of max(N, 11) runs in milliseconds (for commands of a few ms,
# where /usr/bin/time's 10 ms resolution is too coarse)
best_ms() {
  local b=999999999 a z i
  for i in $(seq $((N > 11 ? N : 11))); do
    a=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "bench.sh: failed: $*" >&2; exit 1; }; z=$(date +%s%N)
    (( z - a < b )) && b=$(( z - a ))
  done
  awk -v n="$b" 'BEGIN{printf "%.1f", n / 1e6}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", b/a}'; }
mb() { echo $(( $(stat -c %s "$1") >> 20 )); }

# ---- verity ------------------------------------------------------------------------------
salt=$(printf '%064x' 7) uuid=12345678-1234-4234-8234-123456789abc
[ -s "$B/verity.data" ] || head -c $((1 << 30)) /dev/urandom > "$B/verity.data"
cat "$B/verity.data" > /dev/null
read -r v_ours _ < <(best "$vf" "$B/verity.data" "$B/ours.hash" "$salt" "$uuid")
read -r v_gen _ < <(best env NODEIMG_SHA256_GENERIC=1 "$vf" "$B/verity.data" "$B/gen.hash" "$salt" "$uuid")
cmp -s "$B/ours.hash" "$B/gen.hash" || { echo "bench.sh: verity outputs of the two SHA-256 paths differ" >&2; exit 1; }
read -r v_ref _ < <(best veritysetup format --salt="$salt" --uuid="$uuid" "$B/verity.data" "$B/ref.hash")
cmp -s "$B/ours.hash" "$B/ref.hash" || { echo "bench.sh: verity outputs differ" >&2; exit 1; }

# ---- the machine's hash limits: one core's OpenSSL rate (SHA-NI for SHA-256), bytes/s -------
rate() { openssl speed -evp "$1" -bytes "$2" -seconds 3 2>/dev/null | awk -v a="$1" '$1 == a {v = $NF} END {sub(/k$/, "", v); printf "%.0f", v * 1000}'; }
cores=$(nproc) r256=$(rate sha256 4096) r384=$(rate sha384 16384)
verity_bytes=$(( $(stat -c %s "$B/verity.data") + $(stat -c %s "$B/ours.hash") ))
v_frac=$(awk -v b="$verity_bytes" -v t="$v_ours" -v r="$r256" -v c="$cores" 'BEGIN{printf "%.0f%%", 100 * b / t / (r * c)}')

# ---- full build --------------------------------------------------------------------------
printf '[image]\nname = "bench"\nsource-date-epoch = 1700000000\n[rootfs]\ntar = "%s"\n[kernel]\ncmdline = ["console=ttyS0"]\n' "$rootfs" > "$B/bench.toml"
# Into an empty output directory, as the reference pipeline (whose previous tree is removed
# untimed); then again into the previous build's directory, which replaces (and deletes) its
# outputs.
read -r b_ours b_rss < <(BEFORE='rm -rf "$B/out"' best "$nodeimg" build "$B/bench.toml" -o "$B/out")
read -r b_again _ < <(best "$nodeimg" build "$B/bench.toml" -o "$B/out")
jq -r '.initrd.modules[]' "$B/out/manifest.json" > "$B/modules.txt"
# The floor: SHA-256 of the input tar, the verity data and disk.raw, the UKI prediction (~3
# passes over the UKI per bank), all at every core's limit, plus one write of disk.raw into the
# page cache (dd, best of 3).
disk_b=$(stat -c %s "$B/out/disk.raw") uki_b=$(stat -c %s "$B/out/uki.efi") tar_b=$(stat -c %s "$rootfs")
data_b=$(jq '.verity.data_blocks * 4096' "$B/out/manifest.json")
w_s=999; for _ in 1 2 3; do rm -f "$B/w.raw"; sync
  a=$(date +%s%N); dd if="$B/out/disk.raw" of="$B/w.raw" bs=4M status=none; z=$(date +%s%N)
  w_s=$(awk -v a="$a" -v z="$z" -v b="$w_s" 'BEGIN{t=(z-a)/1e9; print (t<b)?t:b}'); done; rm -f "$B/w.raw"
b_floor=$(awk -v h="$((tar_b + data_b + disk_b + 3 * uki_b))" -v u="$((3 * uki_b))" -v r="$r256" -v r4="$r384" -v c="$cores" -v w="$w_s" \
  'BEGIN{printf "%.2f", h / (r * c) + u / (r4 * c) + w}')
stub=$B/stub.efi && tar -xOf "$rootfs" ./usr/lib/systemd/boot/efi/linuxx64.efi.stub > "$stub"
# The previous run's extracted tree is removed before the timed run, as nodeimg's output is
# replaced by renames: neither side pays for deleting the last build.
read -r b_ref _ < <(BEFORE='rm -rf "$B/ref"' best scripts/bench-reference.sh "$rootfs" "$stub" "$init" "$B/modules.txt" "$B/ref")

# ---- peak RSS: ~2 GB tar and the same as an OCI layout --------------------------------------
if [ ! -s "$B/big.tar" ]; then   # the Debian tar plus 1.6 GiB of incompressible files
  mkdir -p "$B/blobs/opt/blobs"
  for i in $(seq 16); do head -c $((100 << 20)) /dev/urandom > "$B/blobs/opt/blobs/$i"; done
  cp "$rootfs" "$B/big.tar.part" && tar --append -f "$B/big.tar.part" -C "$B/blobs" ./opt && mv "$B/big.tar.part" "$B/big.tar"
  rm -rf "$B/oci"
fi
sed "s|$rootfs|$B/big.tar|" "$B/bench.toml" > "$B/big.toml"
read -r big_s big_rss < <(N=1 best "$nodeimg" build "$B/big.toml" -o "$B/out-big")

# ---- cloud formats: `nodeimg convert` vs `qemu-img convert` on the ~2 GB disk ----------------
# (the same writers `build --format` uses; page cache warm for both sides)
big_raw=$B/out-big/disk.raw
declare -A conv_ours conv_ref conv_sync conv_same
for f in qcow2 vmdk vhd; do
  case $f in
    qcow2) qargs=(-O qcow2) ;;
    vmdk) qargs=(-O vmdk -o subformat=streamOptimized) ;;
    vhd) qargs=(-O vpc -o subformat=fixed,force_size=on) ;;
  esac
  read -r conv_ours[$f] _ < <(BEFORE="rm -f '$B/conv.$f'" best "$nodeimg" convert "$big_raw" --format "$f" -o "$B/conv.$f")
  read -r conv_ref[$f] _ < <(BEFORE="rm -f '$B/ref.$f'" best qemu-img convert -f raw "${qargs[@]}" "$big_raw" "$B/ref.$f")
  # sh -c 'SCRIPT' - OUT QEMU-ARGS… RAW
  read -r conv_sync[$f] _ < <(BEFORE="rm -f '$B/ref.$f'" best sh -c 'o=$1; shift; qemu-img convert -f raw "$@" "$o" && sync "$o"' - "$B/ref.$f" "${qargs[@]}" "$big_raw")
  if [ "$f" != vmdk ]; then   # (vmdk is compression-bound either way)
    read -r conv_same[$f] _ < <(BEFORE="rm -f '$B/ref.$f'" best sh -c 'o=$1; shift; qemu-img convert -f raw "$@" "$o" && sync "$o" && openssl dgst -sha256 "$o"' - "$B/ref.$f" "${qargs[@]}" "$big_raw")
  fi
  rm -f "$B/conv.$f" "$B/ref.$f"
done
mbs() { awk -v b="$(stat -c %s "$big_raw")" -v t="$1" 'BEGIN{printf "%.0f MB/s", b / t / 1e6}'; }
if [ ! -s "$B/oci/index.json" ]; then   # one uncompressed layer: the big tar itself (hardlinked)
  rm -rf "$B/oci.part" && mkdir -p "$B/oci.part/blobs/sha256"
  ld=$(sha256sum "$B/big.tar" | cut -d' ' -f1) ls=$(stat -c %s "$B/big.tar")
  ln "$B/big.tar" "$B/oci.part/blobs/sha256/$ld"
  put() { local d; d=$(printf '%s' "$1" | sha256sum | cut -d' ' -f1); printf '%s' "$1" > "$B/oci.part/blobs/sha256/$d"; echo "$d ${#1}"; }
  read -r cd cs < <(put "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$ld\"]}}")
  read -r md ms < <(put "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd\",\"size\":$cs},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$ld\",\"size\":$ls}]}")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s}]}' "$md" "$ms" > "$B/oci.part/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$B/oci.part/oci-layout"
  mv "$B/oci.part" "$B/oci"
fi
sed "s|^tar = .*|oci = \"$B/oci\"|" "$B/bench.toml" > "$B/oci.toml"
read -r oci_s oci_rss < <(N=1 best "$nodeimg" build "$B/oci.toml" -o "$B/out-oci")

# ---- measure uki -------------------------------------------------------------------------
if [ ! -s "$B/uki.efi" ]; then   # ukify 257 + Debian 257 stub + fixture kernel + 86 MiB initrd
  head -c $((86 << 20)) /dev/urandom > "$B/initrd"
  /usr/bin/python3 .cache/ukify/usr/bin/ukify build --stub .cache/stubs/257/linuxx64.efi.stub \
    --linux .cache/kernel/vmlinuz --initrd "$B/initrd" --cmdline "console=ttyS0 panic=-1" \
    --os-release "ID=bench" --uname bench --output "$B/uki.part.efi" >/dev/null
  mv "$B/uki.part.efi" "$B/uki.efi"
fi
mkdir -p "$B/sections"
/usr/bin/python3 - "$B" <<'PY'
import pefile, sys
d = sys.argv[1]
pe = pefile.PE(f"{d}/uki.efi")
for s in pe.sections:
    n = s.Name.rstrip(b"\0").decode()
    if n in (".linux", ".osrel", ".cmdline", ".initrd"):
        open(f"{d}/sections/{n[1:]}", "wb").write(s.get_data()[: s.Misc_VirtualSize])
PY
cat "$B/uki.efi" "$B"/sections/* > /dev/null
s=$B/sections
read -r u_ours _ < <(best "$nodeimg" measure uki "$B/uki.efi" --bank sha256,sha384)
read -r u_one _ < <(best "$nodeimg" measure uki "$B/uki.efi" --bank sha256)
read -r u_ref _ < <(best /usr/lib/systemd/systemd-measure calculate --linux="$s/linux" \
  --osrel="$s/osrel" --cmdline="$s/cmdline" --initrd="$s/initrd" --bank=sha256 --bank=sha384)
read -r u_11 _ < <(best "$nodeimg" measure uki "$B/uki.efi" --bank sha256,sha384 --pcr 11)
# The same PCR 11 in both banks as systemd-measure (its .linux/.osrel/.cmdline/.initrd only:
# the bench UKI has no other measured section).
ours11=$("$nodeimg" --json measure uki "$B/uki.efi" --pcr 11 | jq -r '.pcrs.sha256["11"]')
theirs11=$(/usr/lib/systemd/systemd-measure calculate --linux="$s/linux" --osrel="$s/osrel" \
  --cmdline="$s/cmdline" --initrd="$s/initrd" --bank=sha256 --json=short | jq -r '.sha256[0].hash')
[ "$ours11" = "$theirs11" ] || echo "bench.sh: note: PCR 11 differs from systemd-measure's ($ours11 vs $theirs11): the UKI has sections it does not hash" >&2
nitro=$B/nitro/bin/nitro-tpm-pcr-compute
[ -x "$nitro" ] || cargo install -q --locked --root "$B/nitro" nitro-tpm-pcr-compute@1.1.2 >/dev/null 2>&1 \
  || { echo "bench.sh: cannot install nitro-tpm-pcr-compute" >&2; exit 1; }
read -r u_nitro _ < <(best "$nitro" --image "$B/uki.efi")
read -r u_n_ours _ < <(best "$nodeimg" measure uki "$B/uki.efi" --bank sha384 --pcr 4,12)

# ---- measure snp -------------------------------------------------------------------------
{ head -c $((2 << 20)) /dev/zero; cat /usr/share/ovmf/OVMF.fd; } > "$B/OVMF-4M.fd"
snp=(--mode snp --ovmf "$B/OVMF-4M.fd" --vcpus 64 --vcpu-type EPYC-Milan --vmm-type QEMU --guest-features 0x1)
ours=$("$nodeimg" measure snp "${snp[@]}") theirs=$(sev-snp-measure "${snp[@]}")
[ "$ours" = "$theirs" ] || { echo "bench.sh: SNP digests differ: nodeimg $ours, sev-snp-measure $theirs" >&2; exit 1; }
s_ours=$(best_ms "$nodeimg" measure snp "${snp[@]}")
s_ref=$(best_ms sev-snp-measure "${snp[@]}")

# ---- default image: cold vs warm cache ------------------------------------------------------
read -r d_cold _ < <(BEFORE='rm -rf "$B/cache-cold"' best "$nodeimg" build --cache-dir "$B/cache-cold" -o "$B/out-cold")
read -r d_warm _ < <(best "$nodeimg" build --cache-dir "$B/cache-cold" -o "$B/out-warm")
cmp -s "$B/out-cold/SHA256SUMS" "$B/out-warm/SHA256SUMS" || { echo "bench.sh: cold and warm default builds differ" >&2; exit 1; }

echo "| benchmark (best of $N, $(nproc) cores) | nodeimg | reference | speed-up |"
echo "|---|---|---|---|"
echo "| dm-verity hash, 1 GiB (vs \`veritysetup format\`, identical output) | ${v_ours} s | ${v_ref} s | $(ratio "$v_ours" "$v_ref") |"
echo "| dm-verity hash, 1 GiB, SHA-256 of one block at a time (\`NODEIMG_SHA256_GENERIC=1\`: the \`sha2\` crate) | ${v_gen} s | | |"
echo "| dm-verity hash, 1 GiB: share of the machine's SHA-256 limit ($cores x $((r256 / 1000000)) MB/s, openssl 4 KiB) | ${v_frac} | | |"
echo "| full build, $(mb "$rootfs") MB Debian rootfs tar, empty output dir (vs tar+mkfs.erofs+veritysetup+objcopy+mkfs.vfat+sfdisk) | ${b_ours} s | ${b_ref} s | $(ratio "$b_ours" "$b_ref") |"
echo "| full build, same tar, vs its own floor (hashing at the SHA limit + one write of disk.raw) | ${b_ours} s | ${b_floor} s | $(awk -v a="$b_ours" -v b="$b_floor" 'BEGIN{printf "%.2fx the floor", a/b}') |"
echo "| full build, same tar, into the previous build's directory (replaces its outputs) | ${b_again} s | ${b_floor} s | $(awk -v a="$b_again" -v b="$b_floor" 'BEGIN{printf "%.2fx the floor", a/b}') |"
echo "| \`measure uki\`, $(mb "$B/uki.efi") MiB UKI, PCR 4+9+11 sha256+sha384 (vs \`systemd-measure calculate\`: PCR 11 only) | ${u_ours} s | ${u_ref} s | $(ratio "$u_ours" "$u_ref") |"
echo "| \`measure uki --bank sha256\`, same UKI | ${u_one} s | | |"
echo "| \`measure uki --pcr 11\` (both banks: systemd-measure's work), same UKI | ${u_11} s | ${u_ref} s | $(ratio "$u_11" "$u_ref") |"
echo "| \`measure uki --bank sha384 --pcr 4,12\` (vs \`nitro-tpm-pcr-compute\`: PCR 4/7/12 SHA-384), same UKI | ${u_n_ours} s | ${u_nitro} s | $(ratio "$u_n_ours" "$u_nitro") |"
echo "| \`measure snp\`, 64 vCPUs, 4 MiB OVMF (vs \`sev-snp-measure\` 0.0.13, same digest) | ${s_ours} ms | ${s_ref} ms | $(ratio "$s_ours" "$s_ref") |"
echo "| peak RSS of \`nodeimg build\`: $(mb "$rootfs") MB tar / $(mb "$B/big.tar") MB tar / same as OCI layout | $((b_rss >> 10)) / $((big_rss >> 10)) / $((oci_rss >> 10)) MiB | | |"
echo "| full build, $(mb "$B/big.tar") MB tar / same as OCI layout | ${big_s} s / ${oci_s} s | | |"
for f in qcow2 vmdk vhd; do
  echo "| \`convert --format $f\`, $(mb "$big_raw") MiB disk (vs \`qemu-img convert\` to the same format) | ${conv_ours[$f]} s ($(mbs "${conv_ours[$f]}")) | ${conv_ref[$f]} s ($(mbs "${conv_ref[$f]}")) | $(ratio "${conv_ours[$f]}" "${conv_ref[$f]}") |"
  echo "| … vs \`qemu-img convert\` + \`sync FILE\` (durable, as nodeimg's) | | ${conv_sync[$f]} s | $(ratio "${conv_ours[$f]}" "${conv_sync[$f]}") |"
  [ -z "${conv_same[$f]:-}" ] || echo "| … vs \`qemu-img convert\` + \`sync\` + \`openssl dgst -sha256\` (durable and hashed: the same job) | | ${conv_same[$f]} s | $(ratio "${conv_ours[$f]}" "${conv_same[$f]}") |"
done
echo "| default image build, warm cache (vs cold: empty --cache-dir, same outputs) | ${d_warm} s | ${d_cold} s | $(ratio "$d_warm" "$d_cold") |"
