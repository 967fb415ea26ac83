#!/usr/bin/env bash
# Boots the real nodeimg-init as /init under QEMU with the Debian bookworm cloud kernel and checks
# what the host cannot: real dm-verity, erofs, overlay and switch_root. Rootless; TCG unless VM_ACCEL=kvm.
#
#   ro         read-only root boots; the root script sees a read-only / and the PCR line is printed
#   overlay    volatile-overlay root boots and / is writable
#   tpm        with swtpm attached, the NODEIMG-PCRS line carries sha256 values
#   corrupt    a flipped byte in the erofs superblock → "nodeimg-init: error: verity: …", power off
#   execeio    a flipped byte in /bin/busybox (the interpreter of /sbin/init) → exec fails with EIO
#              after switch_root → the same "verity" error line
#   wronghash  roothash= whose PARTUUIDs match nothing → DPS-type fallback, then the verity error
#   badconf    an unknown config key → one error line naming the line number, power off
#   tests      the privileged integration tests (dm_verity, gpt_discovery) run inside the VM as
#              root with NODEIMG_REQUIRE_ROOT/TOOLS/DM=1 (this host kernel may lack device-mapper)
#
# Usage: init/tests/vm/vm-check.sh [WORKDIR] [CASE...]   (default: all cases)
# Env:   KERNEL_DEB=<linux-image-6.1.*-cloud-amd64 .deb> (default: `apt-get download` it)
#        CARGO_TARGET_DIR as usual. Needs qemu-system-x86, busybox-static, erofs-utils,
#        cryptsetup-bin, fdisk, cpio, kmod, jq, swtpm (tpm case).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work=${1:-$(mktemp -d /tmp/nodeimg-init-vm.XXXXXX)}
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(ro overlay tpm corrupt execeio wronghash badconf tests)
mkdir -p "$work"
target=x86_64-unknown-linux-gnu
export RUSTFLAGS="-C target-feature=+crt-static"

die() { echo "vm-check: $*" >&2; exit 1; }

fetch_kernel() {
  [ -d "$work/k/boot" ] && return
  local deb=${KERNEL_DEB:-}
  if [ -z "$deb" ]; then
    local pkg
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-6/ {print $2; exit}')
    [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 (apt-get update?)"
    (cd "$work" && apt-get download "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
    deb=$(ls "$work"/linux-image-6*.deb | head -n1)
  fi
  dpkg -x "$deb" "$work/k"
  kver=$(ls "$work/k/lib/modules")
  depmod -b "$work/k" "$kver"
}

build() {
  (cd "$repo" && cargo build --release -p nodeimg-init --target "$target" -q)
  init_bin="${CARGO_TARGET_DIR:-$repo/target}/$target/release/nodeimg-init"
  file "$init_bin" | grep -q 'static' || die "$init_bin is not static"
}

# Module paths (relative to lib/modules/$kver) in dependency order.
modules=(kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
  kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko
  kernel/drivers/virtio/virtio_pci.ko kernel/drivers/block/virtio_blk.ko
  kernel/drivers/md/dm-mod.ko kernel/drivers/md/dm-bufio.ko kernel/lib/reed_solomon/reed_solomon.ko
  kernel/drivers/md/dm-verity.ko kernel/lib/libcrc32c.ko kernel/fs/erofs/erofs.ko
  kernel/fs/overlayfs/overlay.ko)

copy_modules() { # $1 = initrd dir; prints nothing, writes $1/lib/modules/*.ko
  mkdir -p "$1/lib/modules"
  for m in "${modules[@]}"; do cp "$work/k/lib/modules/$kver/$m" "$1/lib/modules/"; done
}

make_initrd() { # $1 = root-mode, $2 = output, $3 = extra config line (optional)
  local d="$work/initrd-$1"
  rm -rf "$d" && mkdir -p "$d/etc"
  cp "$init_bin" "$d/init"
  copy_modules "$d"
  {
    echo "# nodeimg-init test config"
    for m in "${modules[@]}"; do echo "module /lib/modules/$(basename "$m")"; done
    echo "root-mode $1"
    echo "init /sbin/init"
    [ -z "${3:-}" ] || echo "$3"
  } >"$d/etc/nodeimg-init.conf"
  (cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$2"
}

make_disk() {
  local r="$work/root"
  rm -rf "$r" && mkdir -p "$r"/{bin,sbin,proc,sys,dev,run,tmp}
  cp /bin/busybox "$r/bin/busybox"
  cat >"$r/sbin/init" <<'SH'
#!/bin/busybox sh
bb=/bin/busybox
echo "SMOKE-ROOT-OK $($bb grep ' / ' /proc/mounts | $bb head -n1)"
if $bb touch /smoke-write 2>/dev/null; then echo SMOKE-RW; else echo SMOKE-RO; fi
$bb test -d /proc/1 && $bb test -e /dev/null && echo SMOKE-API-MOUNTS
$bb test -e /init && echo SMOKE-INITRAMFS-VISIBLE
$bb poweroff -f
SH
  chmod 755 "$r/sbin/init"
  mkfs.erofs --quiet -T 0 -U 11111111-2222-4333-8444-555555555555 "$work/root.erofs" "$r" >/dev/null
  veritysetup format --hash=sha256 --data-block-size=4096 --hash-block-size=4096 \
    "$work/root.erofs" "$work/root.verity" >"$work/verity.txt"
  roothash=$(awk '/^Root hash:/ {print $3}' "$work/verity.txt")
  local du hu dsz hsz
  du=$(echo "$roothash" | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
  hu=$(echo "${roothash:32}" | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')
  dsz=$(( ($(stat -c %s "$work/root.erofs") + 1048575) / 1048576 * 2048 ))
  hsz=$(( ($(stat -c %s "$work/root.verity") + 1048575) / 1048576 * 2048 ))
  data_start=2048
  hash_start=$((data_start + dsz))
  rm -f "$work/disk.img"
  truncate -s $(( (hash_start + hsz + 2048) * 512 )) "$work/disk.img"
  printf 'label: gpt\nstart=%s, size=%s, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709, uuid=%s\nstart=%s, size=%s, type=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5, uuid=%s\n' \
    "$data_start" "$dsz" "$du" "$hash_start" "$hsz" "$hu" | sfdisk -q "$work/disk.img"
  dd if="$work/root.erofs" of="$work/disk.img" bs=512 seek="$data_start" conv=notrunc status=none
  dd if="$work/root.verity" of="$work/disk.img" bs=512 seek="$hash_start" conv=notrunc status=none
}

# TCG by default: KVM inside some nested hosts hangs or aborts qemu. VM_ACCEL=kvm to try it.
accel() { echo "${VM_ACCEL:-tcg}"; }

# $1 log, $2 initrd, $3 disk, $4 kernel args, rest: extra qemu args
boot() {
  local log=$1 initrd=$2 disk=$3 args=$4; shift 4
  rm -f "$log"
  timeout 240 qemu-system-x86_64 -machine q35 -accel "$(accel)" -m 768 -smp 1 -no-reboot \
    -display none -monitor none -serial "file:$log" \
    -kernel "$work/k/boot/vmlinuz-$kver" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 $args" \
    -drive "file=$disk,if=virtio,format=raw,readonly=on" "$@" || true
}

expect() { # $1 case, $2 log, rest: fixed strings that must appear
  local name=$1 log=$2; shift 2
  for s in "$@"; do
    if ! grep -qF -- "$s" "$log"; then
      echo "FAIL $name: missing \"$s\" (log: $log)"; grep -a nodeimg "$log" | sed 's/^/    /'; failed=1; return
    fi
  done
  echo "PASS $name"
}

refute() { # $1 case, $2 log, $3 string that must not appear
  if grep -qF -- "$3" "$2"; then echo "FAIL $1: unexpected \"$3\""; failed=1; fi
}

case_ro() {
  boot "$work/ro.log" "$work/initrd-ro.cpio" "$work/disk.img" "roothash=$roothash"
  expect ro "$work/ro.log" "NODEIMG-PCRS {}" "nodeimg-init: root verified, switching to /sbin/init" \
    "SMOKE-ROOT-OK /dev/mapper/root / erofs ro" SMOKE-RO SMOKE-API-MOUNTS
  refute ro "$work/ro.log" SMOKE-INITRAMFS-VISIBLE
}

case_overlay() {
  boot "$work/overlay.log" "$work/initrd-overlay.cpio" "$work/disk.img" "roothash=$roothash"
  expect overlay "$work/overlay.log" "nodeimg-init: root verified" "SMOKE-ROOT-OK overlay / overlay rw" \
    SMOKE-RW SMOKE-API-MOUNTS
}

case_tpm() {
  command -v swtpm >/dev/null || { echo "SKIP tpm: swtpm not installed"; return; }
  local t="$work/tpm" pid
  rm -rf "$t" && mkdir -p "$t"
  swtpm socket --tpm2 --tpmstate dir="$t" --ctrl type=unixio,path="$t/sock" --pid file="$t/pid" --daemon
  boot "$work/tpm.log" "$work/initrd-ro.cpio" "$work/disk.img" "roothash=$roothash" \
    -chardev socket,id=chrtpm,path="$t/sock" -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0
  pid=$(cat "$t/pid" 2>/dev/null || true)
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  expect tpm "$work/tpm.log" 'NODEIMG-PCRS {"' '"sha256":{"0":"' SMOKE-ROOT-OK
  grep -a '^NODEIMG-PCRS' "$work/tpm.log" | head -n1 | sed 's/^NODEIMG-PCRS //' | tr -d '\r' | jq -e '.sha256["15"] | test("^[0-9a-f]{64}$")' >/dev/null \
    || { echo "FAIL tpm: PCR line is not JSON with sha256 PCR 15"; failed=1; }
}

case_corrupt() {
  cp "$work/disk.img" "$work/corrupt.img"
  # erofs superblock: byte 1024 of the data partition.
  printf '\xff' | dd of="$work/corrupt.img" bs=1 seek=$((data_start * 512 + 1024 + 8)) conv=notrunc status=none
  boot "$work/corrupt.log" "$work/initrd-ro.cpio" "$work/corrupt.img" "roothash=$roothash"
  expect corrupt "$work/corrupt.log" \
    "nodeimg-init: error: verity: root filesystem failed verification (mount /dev/mapper/root: EIO)" "reboot: Power down"
}

case_execeio() {
  local phys
  phys=$(dump.erofs --path=/bin/busybox -e "$work/root.erofs" | awk '$1 == "0:" {sub(/\.\..*/, "", $7); print $7}')
  [ -n "$phys" ] || die "cannot find /bin/busybox's first extent"
  cp "$work/disk.img" "$work/execeio.img"
  printf '\xff' | dd of="$work/execeio.img" bs=1 seek=$((data_start * 512 + phys + 100)) conv=notrunc status=none
  boot "$work/execeio.log" "$work/initrd-ro.cpio" "$work/execeio.img" "roothash=$roothash"
  expect execeio "$work/execeio.log" "nodeimg-init: root verified, switching to /sbin/init" \
    "nodeimg-init: error: verity: root filesystem failed verification (exec /sbin/init in the new root: EIO)" \
    "reboot: Power down"
}

case_wronghash() {
  local wrong=${roothash:0:32}$(echo "${roothash:32}" | tr '0-9a-f' '1-9a-f0')
  boot "$work/wronghash.log" "$work/initrd-ro.cpio" "$work/disk.img" "roothash=$wrong nodeimg.rootwait=2"
  expect wronghash "$work/wronghash.log" "nodeimg-init: warning: no partition has the PARTUUIDs derived from roothash=" \
    "nodeimg-init: error: verity: root filesystem failed verification" "reboot: Power down"
}

case_badconf() {
  make_initrd read-only "$work/initrd-bad.cpio" "colour blue"
  boot "$work/badconf.log" "$work/initrd-bad.cpio" "$work/disk.img" "roothash=$roothash"
  expect badconf "$work/badconf.log" "nodeimg-init: error: /etc/nodeimg-init.conf: line 17: unknown key \`colour\`" \
    "reboot: Power down"
}

case_tests() {
  local d="$work/testvm" bins
  rm -rf "$d" && mkdir -p "$d"/{bin,sbin,usr/sbin,tmp,etc,tests,lib64,lib/x86_64-linux-gnu}
  bins=$(cd "$repo" && cargo test -q --release -p nodeimg-init --target "$target" --tests --no-run \
    --message-format=json 2>/dev/null | jq -r 'select(.profile.test == true and .target.kind == ["test"]) | .executable')
  [ -n "$bins" ] || die "no integration test binaries built"
  for b in $bins; do file "$b" | grep -q static || die "$b is not static"; cp "$b" "$d/tests/"; done
  cp /bin/busybox "$d/bin/busybox"
  for tool in /usr/sbin/veritysetup /usr/sbin/losetup /usr/sbin/sfdisk /usr/bin/partx; do
    cp "$tool" "$d/usr/sbin/"
    ldd "$tool" | awk '/=>/ {print $3}' | while read -r lib; do cp -n "$lib" "$d/lib/x86_64-linux-gnu/"; done
  done
  cp /lib64/ld-linux-x86-64.so.2 "$d/lib64/"
  copy_modules "$d"
  cp "$work/k/lib/modules/$kver/kernel/drivers/block/loop.ko" "$d/lib/modules/"
  cat >"$d/init" <<'SH'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/bin
mkdir -p /proc /sys /dev /run
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev; mount -t tmpfs tmpfs /tmp
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk loop dm-mod dm-bufio reed_solomon dm-verity; do
  insmod /lib/modules/$m.ko || echo "insmod $m failed"
done
rc=0
for t in /tests/*; do
  echo "VM-TEST-RUN $t"
  NODEIMG_REQUIRE_ROOT=1 NODEIMG_REQUIRE_TOOLS=1 NODEIMG_REQUIRE_DM=1 TMPDIR=/tmp "$t" --test-threads=1 || rc=1
done
echo "VM-TESTS-EXIT $rc"
poweroff -f
SH
  chmod 755 "$d/init"
  (cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$work/initrd-tests.cpio"
  boot "$work/tests.log" "$work/initrd-tests.cpio" "$work/disk.img" "quiet loglevel=1"
  expect tests "$work/tests.log" "VM-TESTS-EXIT 0" "test correct_root_hash_reads_back_the_data ... ok" \
    "test wrong_root_hash_makes_reads_fail_with_eio ... ok" "test finds_partitions_on_a_loop_device_by_partuuid ... ok"
  refute tests "$work/tests.log" "SKIP:"
}

fetch_kernel
kver=$(ls "$work/k/lib/modules")
build
make_initrd read-only "$work/initrd-ro.cpio"
make_initrd volatile-overlay "$work/initrd-overlay.cpio"
make_disk
failed=0
for c in "${cases[@]}"; do "case_$c"; done
echo "initrd /init: $(stat -c %s "$init_bin") bytes; logs in $work"
exit $failed
