#!/usr/bin/env bash
# Fetches test inputs for the UKI tests into <repo>/.cache (idempotent; nothing is installed):
#   .cache/stubs/{252,254,257}/linuxx64.efi.stub   systemd-stub from bookworm, -backports, trixie
#   .cache/ukify/usr/bin/ukify                      ukify 257 (trixie systemd-ukify; needs python3-pefile)
#   .cache/kernel/boot/vmlinuz-*                    a real EFI-stub kernel (Debian cloud kernel)
# Needs the bookworm-backports and trixie apt sources that scripts/setup.sh adds.
set -euo pipefail
cache=$(cd "$(dirname "$0")/.." && pwd)/.cache
# The current Debian cloud kernel ABI (the archive serves only the newest).
KERNEL=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')
[ -n "$KERNEL" ] || { echo "fetch-stubs.sh: cannot resolve linux-image-cloud-amd64 (run apt-get update)" >&2; exit 1; }

# fetch SPEC DIR MARKER: apt-get download SPEC and dpkg -x it into DIR, unless DIR/MARKER exists
fetch() {
  local spec=$1 dir=$2 marker=$3 tmp
  [ -e "$dir/$marker" ] && return 0
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  (cd "$tmp" && apt-get download -q "$spec" >&2)
  rm -rf "$dir" && mkdir -p "$dir"
  dpkg -x "$tmp"/*.deb "$dir"
  rm -rf "$tmp"
}

mkdir -p "$cache"
stub=usr/lib/systemd/boot/efi/linuxx64.efi.stub
for pair in 252:bookworm 254:bookworm-backports 257:trixie; do
  ver=${pair%%:*} rel=${pair#*:}
  out=$cache/stubs/$ver/linuxx64.efi.stub
  [ -f "$out" ] && continue
  fetch "systemd-boot-efi/$rel" "$cache/stubs/$ver/pkg" "$stub"
  cp "$cache/stubs/$ver/pkg/$stub" "$out.part" && mv "$out.part" "$out"
  rm -rf "$cache/stubs/$ver/pkg"
done

fetch systemd-ukify/trixie "$cache/ukify" usr/bin/ukify
[ -f "$cache/kernel/release" ] && [ "$(cat "$cache/kernel/release")" != "$KERNEL" ] && rm -rf "$cache/kernel"
fetch "linux-image-$KERNEL" "$cache/kernel" "boot/vmlinuz-$KERNEL"
ln -sfn "boot/vmlinuz-$KERNEL" "$cache/kernel/vmlinuz"
echo "$KERNEL" > "$cache/kernel/release"
echo "fetch-stubs.sh: inputs present under $cache" >&2
