#!/usr/bin/env bash
# Prints flash and static RAM of the release image for the product target and fails when they
# exceed the budget (flash < 64 KiB, static RAM < 16 KiB). Build first:
#   cargo build --release -p medgw-firmware --target thumbv7em-none-eabihf
# flash = allocated sections with contents (.vector_table, .text, .rodata, .data initial values);
# static RAM = writable allocated sections (.data, .bss, .uninit). Read from the ELF32 section
# headers, so no binutils are needed.
set -euo pipefail
cd "$(dirname "$0")/.."
elf="${1:-target/thumbv7em-none-eabihf/release/medgw-node}"
python3 - "$elf" <<'PY'
import struct, sys
path = sys.argv[1]
data = open(path, "rb").read()
assert data[:5] == b"\x7fELF\x01", f"{path}: not an ELF32 image"
shoff, = struct.unpack_from("<I", data, 0x20)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
def header(i):
    return struct.unpack_from("<IIIIII", data, shoff + i * shentsize)
stroff = header(shstrndx)[4]
flash = ram = 0
rows = []
for i in range(shnum):
    name, kind, flags, addr, off, size = header(i)
    if not flags & 2 or size == 0:
        continue
    label = data[stroff + name:data.index(b"\0", stroff + name)].decode()
    rows.append((label, addr, size))
    if kind != 8:
        flash += size
    if flags & 1:
        ram += size
for label, addr, size in rows:
    print(f"  {label:<16} {addr:#010x} {size:>8}")
print(f"medgw-node: flash {flash} bytes ({flash/1024:.1f} KiB of 64), static RAM {ram} bytes ({ram/1024:.1f} KiB of 16)")
if flash >= 64 * 1024 or ram >= 16 * 1024:
    sys.exit("over the firmware budget")
PY
