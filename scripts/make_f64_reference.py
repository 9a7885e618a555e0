#!/usr/bin/env python3
"""Exact-arithmetic reference for the default model: greedy decoding in float64.

The GGUF's weights are dequantized by gguf-py (llama.cpp's reference decoder) and run through
the float64 numpy llama forward pass of scripts/make_gguf_golden.py, with no rounding of
activations. llama.cpp itself rounds activations to 8 bits and keeps an f16 KV cache, so at
near-ties its greedy choice can differ from exact arithmetic; this fixture is what our greedy
decoding is held to, with llama.cpp's (tests/fixtures/llamacpp) checked only where its margin is
wide. Writes tests/fixtures/reference/smollm2_f64_greedy.json.

    python3 scripts/make_f64_reference.py [--model PATH] [--tokens 24]
"""
import argparse
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_gguf_golden as golden  # noqa: E402
from llamacpp_common import default_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=default_model())
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--out", default="tests/fixtures/reference/smollm2_f64_greedy.json")
    args = ap.parse_args()
    reader = GGUFReader(args.model)
    meta = {k: f.contents() for k, f in reader.fields.items() if k.startswith("llama.")}
    tensors = {}
    for t in reader.tensors:
        shape = [int(s) for s in reversed(t.shape)]
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(shape)
        tensors[t.name] = (t.tensor_type, w)
    spec = {"hidden": meta["llama.embedding_length"], "heads": meta["llama.attention.head_count"],
            "kv_heads": meta["llama.attention.head_count_kv"],
            "layers": list(range(meta["llama.block_count"])),
            "rope_theta": meta["llama.rope.freq_base"]}
    prompt = [504, 3575, 282, 4649, 314]  # "The capital of France is"
    ids, greedy, margins = list(prompt), [], []
    for _ in range(args.tokens):
        row = golden.numpy_forward(spec, tensors, ids)[-1]
        top = np.argsort(row)[-2:]
        greedy.append(int(top[1]))
        margins.append(round(float(row[top[1]] - row[top[0]]), 5))
        ids.append(int(top[1]))
    out = {"generator": "scripts/make_f64_reference.py", "model": os.path.basename(args.model),
           "arithmetic": "float64, gguf-py dequantized weights, no activation rounding",
           "prompt_ids": prompt, "token_ids": greedy, "top2_margins": margins}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(args.out, greedy, margins)


if __name__ == "__main__":
    main()
