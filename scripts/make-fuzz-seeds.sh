#!/usr/bin/env bash
# Regenerates the seed corpus of the `ovmf_metadata` fuzz target (fuzz/corpus/ovmf_metadata/).
# Needs Debian's ovmf package and the ovmf-prebuilt 0.1.0-alpha.1 crate in the Cargo registry
# (`cargo fetch` after building nodeimg-tests brings it).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/fuzz/corpus/ovmf_metadata
fixtures=$repo/measurements/tests/data/cvm
prebuilt=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*ovmf-prebuilt-0.1.0-alpha.1/OVMF-pure-efi.fd' | head -n1)
[ -n "$prebuilt" ] || { echo "make-fuzz-seeds: ovmf-prebuilt 0.1.0-alpha.1 not in the Cargo registry (cargo fetch)" >&2; exit 1; }
mkdir -p "$out"
python3 - "$out" "$fixtures" /usr/share/ovmf/OVMF.fd "$prebuilt" <<'PY'
import os, struct, sys
out, fixtures, debian, prebuilt = sys.argv[1:]
amd = open(os.path.join(fixtures, "ovmf_AmdSev_suffix.bin"), "rb").read()
x64 = open(os.path.join(fixtures, "ovmf_OvmfX64_suffix.bin"), "rb").read()

def patch(data, offset, new):
    b = bytearray(data)
    b[offset:offset + len(new)] = new
    return bytes(b)

n = len(amd)
asev = n - 0x554  # the ASEV header of the AmdSev fixture
seeds = {
    "amdsev": amd,
    "ovmfx64": x64,
    "debian-bookworm-tail": open(debian, "rb").read()[-4096:],
    "ovmf-prebuilt-tail": open(prebuilt, "rb").read()[-4096:],
    "truncated-1k": amd[-1024:],
    "tiny-49": amd[-49:],
    "no-footer-guid": patch(amd, n - 0x30, bytes(16)),
    "table-too-long": patch(amd, n - 0x32, b"\xff\xff"),
    "entry-length-3": patch(amd, 0xfbc, b"\x03\x00"),
    "asev-count-huge": patch(amd, asev + 4, struct.pack("<III", 0xffffffff, 1, 0x7fffffff)),
    "asev-section-4g": patch(amd, asev + 16, struct.pack("<III", 0x1000, 0xfffff000, 1)),
    "tdvf-offset-out-of-range": patch(amd, 0xf58, b"\xff\xff\xff\xff"),
}
for name, data in seeds.items():
    with open(os.path.join(out, name + ".bin"), "wb") as f:
        f.write(data)
PY
ls -l "$out"
