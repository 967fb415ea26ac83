#!/usr/bin/env bash
# Builds the ~350 MB Debian bookworm rootfs tar the benchmarks use (minbase + systemd + udev +
# kmod + the cloud kernel + systemd-boot-efi), with mmdebstrap, reproducibly (SOURCE_DATE_EPOCH).
# Usage: scripts/make-bench-rootfs.sh [OUT.tar]   (default .cache/bench/debian-rootfs.tar)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.cache/bench/debian-rootfs.tar}
[ -s "$out" ] && { echo "$out"; exit 0; }
command -v mmdebstrap >/dev/null || { echo "make-bench-rootfs.sh: mmdebstrap missing (apt-get install mmdebstrap)" >&2; exit 1; }
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mkdir -p "$(dirname "$out")"
mode=root; [ "$(id -u)" = 0 ] || mode=unshare
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} mmdebstrap --quiet --mode="$mode" --variant=minbase \
  --include=systemd,systemd-sysv,udev,kmod,linux-image-cloud-amd64,systemd-boot-efi,iproute2,ca-certificates \
  bookworm "${out%.tar}.part.tar" ${mirror:+"$mirror"}
mv "${out%.tar}.part.tar" "$out"
echo "$out"
