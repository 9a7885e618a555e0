#!/usr/bin/env python3
"""Golden logits for the `tokenswift make-test-model` presets, from HF transformers.

For each case (preset, weight dtype) this script
  1. writes the model with `tokenswift make-test-model --preset P --dtype D --out TMP/...`,
  2. loads it with transformers (AutoModelForCausalLM, float32, eager attention),
  3. runs each fixed prompt (a fresh sequence from position 0) and keeps the logits of every
     position, and the greedy continuation of 20 tokens (`generate(do_sample=False)`, EOS
     ignored) with the top-1/top-2 margin behind each generated token,
  4. cross-checks the logits against scripts/numpy_reference.py (an independent float64 numpy
     forward pass) and fails if they differ by more than 1e-4 relative,
  5. writes tests/fixtures/golden/<case>.json (metadata, token ids, continuations, the model
     file's FNV-1a 64 so tests can tell the fixture matches the generator) and
     <case>.logits.f32 (little-endian float32, rows = positions of all prompts in order,
     columns = vocabulary).

Usage (from the repository root, after building the `tokenswift` target):
  python3 scripts/make_golden_logits.py [--tokenswift build/launch/tokenswift]
"""
import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_reference  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PROMPT_LENGTHS = [1, 7, 40, 96]
NEW_TOKENS = 20
EXTRA_CASES = [("llama-mha", "bf16")]  # besides every preset in f32
MAX_REL_ERR = 1e-4


def prompt_tokens(k, length, vocab):
    """Prompt k: a fixed, non-periodic pattern of token ids."""
    return [(1 + 17 * k + 31 * i + (i * i) % 23) % vocab for i in range(length)]


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def full_logits(model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids], dtype=torch.long))
    return out.logits[0].to(torch.float32).numpy()


def greedy(model, ids):
    # EOS is ignored (like `generate --ignore-eos`): transformers merges an unset (None)
    # eos_token_id with the model's generation_config.json, so clear that one too.
    model.generation_config.eos_token_id = None
    gen_cfg = transformers.GenerationConfig(
        max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids], dtype=torch.long),
                             attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             generation_config=gen_cfg)
    new = out[0, len(ids):].tolist()
    if len(new) != NEW_TOKENS:
        raise RuntimeError(f"generate returned {len(new)} tokens, expected {NEW_TOKENS}")
    # Margins behind each choice, from one full forward pass over prompt + continuation.
    logits = full_logits(model, ids + new)[len(ids) - 1:len(ids) - 1 + NEW_TOKENS]
    top2 = np.sort(logits, axis=-1)[:, -2:]
    margins = (top2[:, 1] - top2[:, 0]).tolist()
    if logits.argmax(axis=-1).tolist() != new:
        raise RuntimeError("generate() disagrees with the argmax of a full forward pass")
    return new, margins


def run_case(binary, preset, dtype, work, out_dir):
    name = preset if dtype == "f32" else f"{preset}.{dtype}"
    model_dir = work / name
    subprocess.run([binary, "make-test-model", "--preset", preset, "--dtype", dtype,
                    "--out", str(model_dir)], check=True)
    config = json.loads((model_dir / "config.json").read_text())
    st_bytes = (model_dir / "model.safetensors").read_bytes()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    vocab = config["vocab_size"]
    rotary = model.model.rotary_emb

    prompts, rows, worst_rel, worst_abs = [], [], 0.0, 0.0
    offset = 0
    for k, length in enumerate(PROMPT_LENGTHS):
        ids = prompt_tokens(k, length, vocab)
        hf = full_logits(model, ids)
        ref = numpy_reference.forward(model_dir, ids)
        diff = np.abs(hf.astype(np.float64) - ref)
        rel = float((diff.max(axis=-1) / np.abs(ref).max(axis=-1)).max())
        worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, float(diff.max()))
        cont, margins = greedy(model, ids)
        prompts.append({
            "token_ids": ids,
            "logits_row_offset": offset,
            "num_rows": length,
            "greedy": {"max_new_tokens": NEW_TOKENS, "token_ids": cont,
                       "top2_margins": [round(m, 6) for m in margins],
                       "min_top2_margin": round(min(margins), 6)},
        })
        rows.append(hf)
        offset += length
    if worst_rel > MAX_REL_ERR:
        raise RuntimeError(f"{name}: numpy reference and transformers differ: {worst_rel:.3g}")

    logits_file = f"{name}.logits.f32"
    np.concatenate(rows).astype("<f4").tofile(out_dir / logits_file)
    record = {
        "preset": preset,
        "dtype": dtype,
        "generator": f"tokenswift make-test-model --preset {preset} --dtype {dtype}",
        "model_safetensors_bytes": len(st_bytes),
        "model_safetensors_fnv1a64": f"{fnv1a64(st_bytes):016x}",
        "model_safetensors_sha256": hashlib.sha256(st_bytes).hexdigest(),
        "config": config,
        "reference": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "compute_dtype": "float32",
            "attn_implementation": "eager",
        },
        "hf_rope": {
            "rope_parameters": model.config.rope_parameters,
            "inv_freq": [float(x) for x in rotary.inv_freq.tolist()],
            "attention_scaling": float(rotary.attention_scaling),
        },
        "numpy_check": {
            "max_rel_err": worst_rel,
            "max_abs_err": worst_abs,
            "definition": "max over positions of max|hf - numpy| / max|numpy| of the row",
        },
        "vocab_size": vocab,
        "logits_file": logits_file,
        "logits_layout": "little-endian float32, row-major (row, vocab_size); a prompt's rows "
                         "are its positions 0..num_rows-1 starting at logits_row_offset",
        "prompts": prompts,
    }
    (out_dir / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return name, worst_rel, worst_abs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenswift", default=str(REPO / "build/launch/tokenswift"))
    ap.add_argument("--out", default=str(REPO / "tests/fixtures/golden"))
    ap.add_argument("--presets", nargs="*", help="default: every preset of --list")
    args = ap.parse_args()

    listing = subprocess.run([args.tokenswift, "make-test-model", "--list"], check=True,
                             capture_output=True, text=True).stdout
    presets = args.presets or [line.split()[0] for line in listing.splitlines() if line.strip()]
    cases = [(p, "f32") for p in presets] + [c for c in EXTRA_CASES if c[0] in presets]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_case(args.tokenswift, p, d, Path(tmp), out_dir) for p, d in cases]
    index = {"cases": [r[0] for r in results], "prompt_lengths": PROMPT_LENGTHS,
             "greedy_new_tokens": NEW_TOKENS}
    (out_dir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    for name, rel, abs_err in results:
        print(f"{name:24s} numpy vs HF: max rel {rel:.3g}, max abs {abs_err:.3g}")


if __name__ == "__main__":
    main()
