#!/usr/bin/env python3
"""Writes the quantization fixtures under tests/fixtures/kernels/ from an independent reference,
the PyPI `gguf` package (gguf-py, numpy re-implementation of ggml's block formats).

For every stored type T:
  T.blocks  random raw blocks (scale fields set to finite random f16 values)
  T.f32     gguf.quants.dequantize(T.blocks) as little-endian float32
For Q8_0 / Q4_0 / Q4_1 (whose gguf-py quantizers are bit-exact ports of ggml's reference):
  T.quant_in.f32   random float32 input
  T.quant_out      gguf.quants.quantize(input) blocks
tests/kernels/dequant_test.cc checks ts::DequantizeRow / ts::QuantizeRow against them exactly.

Usage: python3 scripts/make_quant_fixtures.py [out_dir]   (deterministic: fixed seed)
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants

QK_K = 256
# name -> (type, block elems, block bytes, byte offsets of f16 scale fields, blocks to write)
TYPES = {
    "q8_0": (Q.Q8_0, 32, 34, [0], 32),
    "q4_0": (Q.Q4_0, 32, 18, [0], 32),
    "q4_1": (Q.Q4_1, 32, 20, [0, 2], 32),
    "q4_k": (Q.Q4_K, QK_K, 144, [0, 2], 4),
    "q5_k": (Q.Q5_K, QK_K, 176, [0, 2], 4),
    "q6_k": (Q.Q6_K, QK_K, 210, [208], 4),
}


def random_f16(rng, n):
    return (rng.standard_normal(n) * 0.05).astype(np.float16)


def write(path, array):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(array).tobytes())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "kernels")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20250214)

    for name, (qtype, _, block_bytes, scale_offsets, n_blocks) in TYPES.items():
        blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
        for off in scale_offsets:
            blocks[:, off:off + 2] = random_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
        ref = quants.dequantize(blocks, qtype).astype(np.float32).reshape(-1)
        write(os.path.join(out, f"{name}.blocks"), blocks)
        write(os.path.join(out, f"{name}.f32"), ref.astype("<f4"))

    # f16: every finite bit pattern class (normals, subnormals, zeros, infinities), no NaN.
    h = rng.integers(0, 1 << 16, size=1024, dtype=np.uint16)
    h = h[(h & 0x7C00) != 0x7C00][:500]
    h = np.concatenate([h, np.array([0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0x7C00, 0xFC00,
                                     0x3C00, 0x0400, 0x03FF, 0xC000, 0x3555], dtype=np.uint16)])
    write(os.path.join(out, "f16.blocks"), h)
    write(os.path.join(out, "f16.f32"), quants.dequantize(h.view(np.uint8), Q.F16).astype("<f4"))
    b = rng.integers(0, 1 << 16, size=1024, dtype=np.uint16)
    b = b[(b & 0x7F80) != 0x7F80][:512]
    write(os.path.join(out, "bf16.blocks"), b)
    write(os.path.join(out, "bf16.f32"), quants.dequantize(b.view(np.uint8), Q.BF16).astype("<f4"))

    for name in ("q8_0", "q4_0", "q4_1"):
        qtype = TYPES[name][0]
        x = (rng.standard_normal((32, 32)) * rng.uniform(0.01, 3.0, size=(32, 1))).astype(np.float32)
        x[0, :] = 0.0  # an all-zero block (scale 0)
        blocks = quants.quantize(x.reshape(1, -1), qtype)
        write(os.path.join(out, f"{name}.quant_in.f32"), x.reshape(-1).astype("<f4"))
        write(os.path.join(out, f"{name}.quant_out"), blocks)


if __name__ == "__main__":
    main()
