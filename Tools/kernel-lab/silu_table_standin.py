#!/usr/bin/env python3
"""Prints a stand-in for the generated silu_table.cu, for timing bfloat16 SiLU·mul in the harness.

The values are Python's float64 silu rounded to float32, not the package's bit-exact table
(KernelSpecialization.siluTablePart generates that from SiLU.silu): close enough to time the
kernel, not to check its bytes. The band matches SiLUTable: magnitudes 0x3300 ..< 0x4300.
"""
import math
import struct

FIRST, PER_SIGN = 0x3300, 4096
values = []
for sign in (0, 0x8000):
    for offset in range(PER_SIGN):
        gate = struct.unpack("<f", struct.pack("<I", (sign | (FIRST + offset)) << 16))[0]
        silu = gate / (1 + math.exp(-gate))
        values.append(struct.unpack("<I", struct.pack("<f", silu))[0])
print("#if NVFP4_SILU_TABLE")
print(f"constexpr uint32_t kSiLUTableFirst = 0x{FIRST:x};")
print(f"constexpr uint32_t kSiLUTableEntriesPerSign = {PER_SIGN};")
print("__device__ const __align__(16) uint32_t kSiLUTableBits[2 * kSiLUTableEntriesPerSign] = {")
for i in range(0, len(values), 8):
    print(", ".join(f"0x{v:x}" for v in values[i:i + 8]) + ",")
print("};")
print("#endif")
