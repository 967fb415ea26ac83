#!/usr/bin/env bash
# The reference-tools pipeline the build benchmark compares against (needs root for tar -p):
# tar extraction → mkfs.erofs → veritysetup → newc initrd → objcopy UKI → mkfs.vfat + mcopy →
# sfdisk + dd. Usage: bench-reference.sh ROOTFS.tar STUB INIT MODULES_LIST WORKDIR
set -euo pipefail
tar=$1 stub=$2 init=$3 mods=$4 w=$5
rm -rf "$w" && mkdir -p "$w/root" "$w/initrd/lib/modules"
tar -xpf "$tar" -C "$w/root" --numeric-owner --xattrs --xattrs-include='*'
kernel=$(ls "$w"/root/boot/vmlinuz-* | head -n1) rel=${kernel##*/vmlinuz-}
mkfs.erofs --quiet -T1700000000 -U12345678-1234-4234-8234-123456789abc "$w/root.erofs" "$w/root" >/dev/null
rh=$(veritysetup format --salt="$(printf '%064x' 7)" "$w/root.erofs" "$w/root.verity" | awk '/Root hash/ {print $3}')
cp "$init" "$w/initrd/init"
while read -r m; do install -D -m644 "$w/root/usr/lib/modules/$rel/$m" "$w/initrd/lib/modules/$rel/$m"; done < "$mods"
(cd "$w/initrd" && find . | sort | cpio -o -H newc --quiet > ../initrd.cpio)
echo "roothash=$rh console=ttyS0" > "$w/cmdline"
objcopy --add-section .osrel="$w/root/etc/os-release" --change-section-vma .osrel=0x20000 \
  --add-section .cmdline="$w/cmdline" --change-section-vma .cmdline=0x30000 \
  --add-section .linux="$kernel" --change-section-vma .linux=0x2000000 \
  --add-section .initrd="$w/initrd.cpio" --change-section-vma .initrd=0x3000000 "$stub" "$w/uki.efi"
truncate -s 64M "$w/esp.img"
mkfs.vfat -F 32 -i 12345678 "$w/esp.img" >/dev/null
mmd -i "$w/esp.img" ::EFI ::EFI/BOOT && mcopy -i "$w/esp.img" "$w/uki.efi" ::EFI/BOOT/BOOTX64.EFI
mib() { echo $(( ($(stat -c %s "$1") + 1048575) / 1048576 )); }
e=$(mib "$w/esp.img") r=$(mib "$w/root.erofs") v=$(mib "$w/root.verity")
truncate -s $(( (e + r + v + 2) * 1048576 )) "$w/disk.raw"
printf 'label: gpt\nstart=2048, size=%dMiB, type=U\nsize=%dMiB, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709\nsize=%dMiB, type=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5\n' "$e" "$r" "$v" \
  | sfdisk -q "$w/disk.raw"
dd if="$w/esp.img" of="$w/disk.raw" bs=1M seek=1 conv=notrunc status=none
dd if="$w/root.erofs" of="$w/disk.raw" bs=1M seek=$((1 + e)) conv=notrunc status=none
dd if="$w/root.verity" of="$w/disk.raw" bs=1M seek=$((1 + e + r)) conv=notrunc status=none
