#!/usr/bin/env python3
"""Golden logits for TokenSwift's draft heads (runtime/decode/draft_heads.h), from torch.

The heads, as released by TokenSwift (bigai-nlco/TokenSwift, class MedusaModel), applied to the
final hidden state h before the model's final norm, chained:

    x_0 = h
    x_{i+1} = x_i + linear_i(rms_norm(x_i) * input_layernorm_i)
    logits_i = lm_head(rms_norm(x_{i+1}) * post_layernorm_i)

This script
  1. writes the tiny `llama-mha` test model with `tokenswift make-test-model` and reads its
     lm_head.weight and rms_norm_eps,
  2. makes 3 random heads with torch (fixed seed) in mixed dtypes (head 0 f32, head 1 bf16,
     head 2 f16) plus one unrelated tensor the loader must ignore, and saves them with the
     `safetensors` library (the writer real checkpoints come from),
  3. makes a fixed hidden-state input (rows of very different magnitudes),
  4. computes the 3 heads' logits in torch float32 from the stored values, cross-checks them
     against float64 numpy (fails above 1e-5 relative),
  5. writes tests/fixtures/heads/: heads.safetensors, hidden.f32 (n, hidden), logits.f32
     (3, n, vocab), golden.json (shapes, eps, dtypes, versions, cross-check error).

Usage (from the repository root, after building the `tokenswift` target):
  python3 scripts/make_heads_golden.py [--tokenswift build/launch/tokenswift]
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import safetensors
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "heads"
PRESET = "llama-mha"
NUM_HEADS = 3
HEAD_DTYPES = [torch.float32, torch.bfloat16, torch.float16]
ROW_SCALES = [0.25, 1.0, 2.0, 4.0, 9.0, 30.0]  # pre-norm hidden states grow large
SEED = 20250227
MAX_REL_ERR = 1e-5


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def heads_torch(hidden, heads, lm_head, eps):
    x = hidden
    out = []
    for h in heads:
        x = x + torch.nn.functional.linear(rms_norm(x, h["in"], eps), h["linear"])
        out.append(torch.nn.functional.linear(rms_norm(x, h["post"], eps), lm_head))
    return torch.stack(out)


def heads_numpy64(hidden, heads, lm_head, eps):
    def norm(x, w):
        return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    x = hidden.astype(np.float64)
    out = []
    for h in heads:
        x = x + norm(x, h["in"]) @ h["linear"].T
        out.append(norm(x, h["post"]) @ lm_head.T)
    return np.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenswift", default=str(REPO / "build" / "launch" / "tokenswift"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / PRESET
        subprocess.run([args.tokenswift, "make-test-model", "--preset", PRESET, "--out",
                        str(model_dir)], check=True)
        config = json.loads((model_dir / "config.json").read_text())
        lm_head = load_file(str(model_dir / "model.safetensors"))["lm_head.weight"].float()
    hidden_size = config["hidden_size"]
    vocab = config["vocab_size"]
    eps = float(config["rms_norm_eps"])
    assert tuple(lm_head.shape) == (vocab, hidden_size)

    gen = torch.Generator().manual_seed(SEED)
    tensors = {}
    for i in range(NUM_HEADS):
        dt = HEAD_DTYPES[i]
        pre = f"model.medusa_layers.{i}."
        tensors[pre + "input_layernorm.weight"] = (
            1 + 0.1 * torch.randn(hidden_size, generator=gen)).to(dt)
        tensors[pre + "linear.weight"] = (
            torch.randn(hidden_size, hidden_size, generator=gen) / hidden_size**0.5).to(dt)
        tensors[pre + "post_layernorm.weight"] = (
            1 + 0.1 * torch.randn(hidden_size, generator=gen)).to(dt)
    # An unrelated tensor, as in a full checkpoint: the loader must ignore it.
    tensors["model.norm.weight"] = torch.ones(hidden_size)
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / "heads.safetensors"), metadata={"format": "pt"})
    (OUT / "heads.safetensors").chmod(0o644)

    # Read back what was stored, and compute from exactly those values in float32.
    stored = load_file(str(OUT / "heads.safetensors"))
    heads = [{k: stored[f"model.medusa_layers.{i}.{n}.weight"].float()
              for k, n in (("in", "input_layernorm"), ("linear", "linear"),
                           ("post", "post_layernorm"))} for i in range(NUM_HEADS)]
    scales = torch.tensor(ROW_SCALES).unsqueeze(1)
    hidden = (torch.randn(len(ROW_SCALES), hidden_size, generator=gen) * scales).float()

    with torch.no_grad():
        logits = heads_torch(hidden, heads, lm_head, eps).float().numpy()
    ref64 = heads_numpy64(hidden.numpy(), [{k: v.double().numpy() for k, v in h.items()}
                                           for h in heads], lm_head.double().numpy(), eps)
    rel = float(np.abs(logits - ref64).max() / np.abs(ref64).max())
    if rel > MAX_REL_ERR:
        sys.exit(f"torch float32 vs numpy float64: relative error {rel:.3g} > {MAX_REL_ERR}")

    hidden.numpy().astype("<f4").tofile(OUT / "hidden.f32")
    logits.astype("<f4").tofile(OUT / "logits.f32")
    meta = {
        "preset": PRESET,
        "num_heads": NUM_HEADS,
        "rows": len(ROW_SCALES),
        "hidden_size": hidden_size,
        "vocab_size": vocab,
        "rms_norm_eps": eps,
        "head_dtypes": [str(d).replace("torch.", "") for d in HEAD_DTYPES],
        "ignored_tensors": ["model.norm.weight"],
        "row_scales": ROW_SCALES,
        "seed": SEED,
        "float64_cross_check_rel_err": rel,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }
    (OUT / "golden.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {OUT} (cross-check rel err {rel:.3g})")


if __name__ == "__main__":
    main()
