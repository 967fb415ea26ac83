#!/usr/bin/env bash
# Writes the seed corpus of the `fat` fuzz target (fuzz/corpus/fat/) with dosfstools and
# mtools: small FAT12 and FAT16 ESPs (the FAT32 images nodeimg writes are at least 33 MiB, too
# big for a fuzz seed; fatfs reads all three through the same directory and chain code),
# with `EFI/BOOT/BOOTX64.EFI`, a long file name, a nested directory, and a multi-cluster file.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)/corpus/fat
mkdir -p "$out"
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
export SOURCE_DATE_EPOCH=1700000000 MTOOLS_SKIP_CHECK=1
printf 'MZ\x90\0uki' > "$tmp/uki"
head -c 3000 /dev/zero | tr '\0' 'k' > "$tmp/big"
seed() { # name kib fat-bits
  local img=$tmp/$1
  mkfs.vfat -C -F "$3" -s 1 -n ESP -i 1234abcd "$img" "$2" >/dev/null
  mmd -i "$img" ::EFI ::EFI/BOOT ::EFI/Linux ::loader ::loader/entries
  mcopy -m -i "$img" "$tmp/uki" ::EFI/BOOT/BOOTX64.EFI
  mcopy -m -i "$img" "$tmp/big" "::EFI/Linux/a long name-1.efi"
  mcopy -m -i "$img" "$tmp/uki" ::loader/entries/x.conf
  cp "$img" "$out/$1"
}
seed fat12-64k.img 64 12
seed fat16-3m.img 3072 16
# Mostly zeros: cut each image after its last non-zero sector (reads past the end then fail,
# which the fuzzer gets to explore too) so the corpus stays small and the fuzzer fast.
for f in "$out"/*.img; do
  python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
d = open(p, "rb").read().rstrip(b"\0")
open(p, "wb").write(d + b"\0" * (-len(d) % 512))
PY
done
ls -l "$out"
