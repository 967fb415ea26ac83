#!/usr/bin/env bash
# Installs every host package the test tiers need. Idempotent; safe to re-run.
# Debian sources: bookworm-backports (qemu-system-x86 matching qemu-utils) and trixie (pinned low,
# used only for leaf packages / dpkg -x). The mirror URI is taken from the host's own debian.sources
# so this script names no host itself.
# Run it as root, or as a user with sudo: it then re-runs itself under sudo.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then
    echo "setup.sh: not root, re-running under sudo" >&2
    exec sudo -- "$0" "$@"
  fi
  echo "setup.sh: must run as root (it installs packages with apt-get), and sudo is not installed: run it as root" >&2
  exit 1
fi

src=/etc/apt/sources.list.d/debian.sources
uri=$(awk '/^URIs:/ {print $2; exit}' "$src" 2>/dev/null || true)
[ -n "$uri" ] || uri=$(grep -rhoE 'https?://[^ ]+/debian/?' /etc/apt/sources.list* 2>/dev/null | head -n1)
[ -n "$uri" ] || { echo "setup.sh: cannot find the Debian mirror URI in $src" >&2; exit 1; }

changed=0
if [ ! -f /etc/apt/sources.list.d/nodeimg-extra.sources ]; then
  cat > /etc/apt/sources.list.d/nodeimg-extra.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat > /etc/apt/preferences.d/nodeimg-trixie <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
  changed=1
fi

pkgs=(ovmf swtpm swtpm-tools systemd-boot-efi cryptsetup-bin erofs-utils mtools fdisk
      tpm2-tools mmdebstrap busybox-static jq cpio kmod binutils zstd xz-utils util-linux
      faketime dosfstools python3-pefile time pesign openssl systemd uidmap gcc libc6-dev git
      bash-completion man-db sbsigntool efitools python3-virt-firmware softhsm2)
bpo_pkgs=(qemu-system-x86 osslsigncode)
missing=()
for p in "${pkgs[@]}" "${bpo_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] || [ $changed = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bpo_pkgs[@]}"
fi
# Node.js + npm for the local Sigstore stack (tests/sigstore-mock): Debian's, unless the
# machine already has a Node.js with npm (e.g. a newer one from another source).
if ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends nodejs npm
fi
# cosign 2.5 from trixie: a static Go binary, a leaf package (pinned low, taken explicitly).
if ! command -v cosign >/dev/null; then
  apt-get install -y -qq --no-install-recommends -t trixie cosign
fi
# PyPI tools go into the python3 the tests run. A fresh Debian has no pip (python3-pip brings
# it) and marks its Python externally managed (PEP 668); these are test tools installed as root
# into /usr/local, so that marker is overridden for them (older pips ignore the variable).
pip_install() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip
  fi
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q "$@"
}
# The SEV-SNP oracle.
if ! python3 -c 'import importlib.metadata as m; assert m.version("sev-snp-measure") == "0.0.13"' 2>/dev/null; then
  pip_install sev-snp-measure==0.0.13
fi
# The SBOM validator: CycloneDX's own library (its JSON schemas, strict) and packageurl-python.
if ! python3 -c 'import importlib.metadata as m; assert m.version("cyclonedx-python-lib") == "8.9.0"; import jsonschema, packageurl' 2>/dev/null; then
  pip_install 'cyclonedx-python-lib[json-validation]==8.9.0'
fi
# An unprivileged user with subordinate ids, for the rootless tests (nodeimg build as a
# non-root user; mmdebstrap in unshare mode needs /etc/subuid, /etc/subgid and uidmap).
if ! id nodeimgci >/dev/null 2>&1; then
  useradd --create-home --shell /usr/sbin/nologin nodeimgci
fi
grep -q '^nodeimgci:' /etc/subuid || usermod --add-subuids 200000-265535 nodeimgci
grep -q '^nodeimgci:' /etc/subgid || usermod --add-subgids 200000-265535 nodeimgci
# The user who ran this through sudo builds images unprivileged (mmdebstrap's unshare mode):
# give them subordinate id ranges if they have none.
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && id "$SUDO_USER" >/dev/null 2>&1; then
  grep -q "^$SUDO_USER:" /etc/subuid 2>/dev/null || usermod --add-subuids 300000-365535 "$SUDO_USER"
  grep -q "^$SUDO_USER:" /etc/subgid 2>/dev/null || usermod --add-subgids 300000-365535 "$SUDO_USER"
fi
echo "setup.sh: host packages present"
