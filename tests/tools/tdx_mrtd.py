#!/usr/bin/env python3
"""Second, deliberately naive TDX MRTD implementation for cross-checking nodeimg.

Written straight from the record layout in shared/specs/cvm-launch-digests.md §10-11 (and edk2's
IntelTdxMetadata.asm), sharing no code with measurements::cvm. Prints the single-pass MRTD, then
the two-pass one, as lowercase hex on two lines.

    tdx_mrtd.py OVMF.fd
"""
import hashlib
import struct
import sys
import uuid

TDX_METADATA_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
MR_EXTEND, PAGE_AUG = 1, 2


def footer_entries(fw):
    size = len(fw)
    table_len = struct.unpack_from("<H", fw, size - 0x32)[0]
    pos, start = size - 0x32, size - 0x20 - table_len
    while pos - start >= 18:
        guid = uuid.UUID(bytes_le=fw[pos - 16:pos])
        length = struct.unpack_from("<H", fw, pos - 18)[0]
        yield guid, fw[pos - length:pos - 18]
        pos -= length


def sections(fw):
    offset = next(struct.unpack_from("<I", data)[0]
                  for guid, data in footer_entries(fw) if guid == TDX_METADATA_GUID)
    at = len(fw) - offset
    sig, _length, version, count = struct.unpack_from("<4sIII", fw, at)
    assert sig == b"TDVF" and version == 1, (sig, version)
    return [struct.unpack_from("<IIQQII", fw, at + 16 + 32 * i) for i in range(count)]


def mrtd(fw, two_pass):
    h = hashlib.sha384()

    def page_add(gpa):
        h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104))

    def extend(gpa, data_offset):
        for chunk in range(16):
            h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa + 256 * chunk) + bytes(104))
            h.update(fw[data_offset + 256 * chunk:data_offset + 256 * (chunk + 1)])

    for data_offset, _raw, address, size, _type, attributes in sections(fw):
        pages = range(size // 4096)
        if two_pass:
            for p in pages:
                if not attributes & PAGE_AUG:
                    page_add(address + 4096 * p)
            if attributes & MR_EXTEND:
                for p in pages:
                    extend(address + 4096 * p, data_offset + 4096 * p)
        else:
            for p in pages:
                if not attributes & PAGE_AUG:
                    page_add(address + 4096 * p)
                if attributes & MR_EXTEND:
                    extend(address + 4096 * p, data_offset + 4096 * p)
    return h.hexdigest()


if __name__ == "__main__":
    firmware = open(sys.argv[1], "rb").read()
    print(mrtd(firmware, two_pass=False))
    print(mrtd(firmware, two_pass=True))
