#!/usr/bin/env bash
# Builds the busybox fixture rootfs for boot tests: OUTDIR/rootfs.tar (reproducible) and
# OUTDIR/kernel-release. Usage: scripts/make-fixture.sh [OUTDIR]   (default <repo>/.cache/fixture)
# Needs root for `apt-get download`; .debs are cached in <repo>/.cache/debs. Idempotent.
set -euo pipefail
umask 022
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/.cache/fixture}" && cd "${1:-$repo/.cache/fixture}" && pwd)
debs=$repo/.cache/debs
fixture=$repo/fixtures/busybox
mods=(dm-mod dm-verity erofs overlay virtio_pci virtio_blk)
applets=(sh mount umount echo cat poweroff reboot sleep ls grep mkdir rm dmesg uname sync)

# Resolve the kernel the cloud metapackage currently points at, and fetch both packages.
kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "make-fixture: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
release=${kpkg#linux-image-}
mkdir -p "$debs"
fetch() {  # fetch PACKAGE: download the candidate .deb into $debs unless it is cached
  local ver; ver=$(apt-cache policy "$1" | awk '/Candidate:/ {print $2}')
  local f; f=$(ls "$debs/$1_${ver/:/%3a}_"*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$f" ]; then
    [ "$(id -u)" = 0 ] || { echo "make-fixture: must run as root to apt-get download $1 (or pre-fill $debs)" >&2; exit 1; }
    (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "$1=$ver" >/dev/null)
    f=$(ls "$debs/$1_${ver/:/%3a}_"*.deb | head -n1)
  fi
  echo "$f"
}
bb_deb=$(fetch busybox-static)
k_deb=$(fetch "$kpkg")

work=$out/work
rm -rf "$work" && mkdir -p "$work/kernel" "$work/root"
dpkg -x "$k_deb" "$work/kernel"
depmod -b "$work/kernel" "$release"

# Root skeleton: real /bin and /sbin, /lib -> usr/lib (merged /usr for modules).
root=$work/root
install -d -m 0755 "$root"/{bin,sbin,etc,dev,proc,sys,run,boot,usr/lib/modules}
install -d -m 1777 "$root/tmp"
ln -s usr/lib "$root/lib"
dpkg -x "$bb_deb" "$work/busybox"
install -m 0755 "$work/busybox/bin/busybox" "$root/bin/busybox"
for a in "${applets[@]}"; do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
install -m 0755 "$fixture/init" "$root/sbin/init"
install -m 0644 "$fixture/os-release" "$root/etc/os-release"
install -m 0644 "$work/kernel/boot/vmlinuz-$release" "$root/boot/vmlinuz-$release"

# Only the modules we need (with their dependencies), then a fresh modules.dep for them.
ksrc=$work/kernel/lib/modules/$release
kdst=$root/usr/lib/modules/$release
install -d -m 0755 "$kdst"
cp "$ksrc"/modules.{order,builtin,builtin.modinfo} "$kdst/"
for m in "${mods[@]}"; do
  modprobe -d "$work/kernel" -S "$release" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
  rel=${ko#"$ksrc"/}
  install -D -m 0644 "$ko" "$kdst/$rel"
done
depmod -b "$root" "$release"
[ -s "$kdst/modules.dep" ] || { echo "make-fixture: depmod wrote no modules.dep" >&2; exit 1; }

# Reproducible tar: sorted names, zero mtimes and owners, no atime/ctime.
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -cf "$out/rootfs.tar.tmp" .
mv "$out/rootfs.tar.tmp" "$out/rootfs.tar"
echo "$release" > "$out/kernel-release"
dpkg-deb -f "$k_deb" Package Version > "$out/packages"
dpkg-deb -f "$bb_deb" Package Version >> "$out/packages"
rm -rf "$work"
echo "rootfs: $out/rootfs.tar ($(du -h "$out/rootfs.tar" | cut -f1))"
echo "kernel-release: $release"
