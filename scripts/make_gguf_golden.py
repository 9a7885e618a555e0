#!/usr/bin/env python3
"""Tiny quantized llama GGUF models and llama.cpp's logits on them (tests/fixtures/gguf_golden).

tests/engine/gguf_golden_test.cc runs our forward pass on these files and compares with the
logits llama.cpp computed on the very same bytes, so every weight type we read (F32 norms, F16,
BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) is checked end to end against an independent engine.

For each model this script
  1. writes a llama-architecture GGUF (gpt2-type vocabulary of the 256 byte tokens, no merges
     needed for token-id input) whose matrices have the types of the model's table below.
     Q8_0/Q4_0/Q4_1/F16/BF16 are quantized by gguf-py from seeded normal weights; gguf-py cannot
     quantize K-quants, so their blocks are written from random bytes: random 6-bit (Q4_K/Q5_K)
     or int8 (Q6_K) sub-block scales, random quants, and f16 super-block scales chosen so the
     weights are roughly zero-mean with the intended standard deviation. Any valid block is a
     fair test: both engines must decode the same bytes. Nothing is permuted: the file is the
     input of both engines (rope on interleaved pairs, as llama.cpp's llama arch expects).
  2. evaluates TOKENS with llama-cpp-python (f32 KV cache, no flash attention, 2 threads) and
     keeps the logits of every position,
  3. cross-checks llama.cpp against an independent float64 numpy forward pass on gguf-py's
     dequantization of the weights (fails above MAX_LLAMACPP_VS_NUMPY; the gap is llama.cpp's
     own activation rounding: 8-bit for quantized matmuls, f16/bf16 for f16/bf16 matmuls), and
     records how much of it a numpy emulation of that rounding explains (round_activations:
     to ~3e-7 for Q4_K/Q5_K; not fully for the 32-block types, f16, bf16 and some Q6_K shapes,
     where ggml's CPU kernels differ in details this emulation does not model),
  4. writes <model>.gguf, <model>.logits.f32 (little-endian float32, (len(TOKENS), vocab)) and
     <model>.json (config, tensor table with FNV-1a 64 of gguf-py's float32 dequantization of
     every tensor, versions, the numpy check) plus index.json.

Usage (from the repository root):
  python3 scripts/make_gguf_golden.py                 # the committed mixed-type models
  python3 scripts/make_gguf_golden.py --set per-type --out /tmp/gg   # one model per type
    (a diagnostic set, ~2.5 MB, not committed: the test reads whatever index.json lists, so
     copying it over tests/fixtures/gguf_golden gives per-type errors)
"""
import argparse
import json
import platform
import zlib
from pathlib import Path

import gguf
import numpy as np
from gguf.quants import dequantize, quantize

REPO = Path(__file__).resolve().parent.parent
T = gguf.GGMLQuantizationType
VOCAB = 256
N_TOKENS = 48
TOKENS = [(1 + 31 * i + (i * i) % 23) % VOCAB for i in range(N_TOKENS)]
MAX_LLAMACPP_VS_NUMPY = 0.1  # measured up to 0.06 (Q8_K activations); garbage weights: ~1
ROLES = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
GAIN = {"attn_q": 1.3, "attn_k": 1.3, "attn_v": 1.0, "attn_output": 0.7, "ffn_gate": 1.0,
        "ffn_up": 1.0, "ffn_down": 0.7}
TYPES = {"f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0, "q4_0": T.Q4_0, "q4_1": T.Q4_1,
         "q4_k": T.Q4_K, "q5_k": T.Q5_K, "q6_k": T.Q6_K}

# The committed models. `layers` gives each layer's types in ROLES order.
MIXED = [
    {   # 32-element block types and f16/bf16; hidden 160 and ffn 224 are odd block counts
        # (5 and 7 blocks), so the two-blocks-per-step integer kernels hit their tail.
        "name": "mix32-tied", "seed": 11, "hidden": 160, "ffn": 224, "heads": 4, "kv_heads": 2,
        "tied": True, "embed": "q4_1", "output": None,
        "layers": [["q8_0", "q4_0", "q4_1", "f16", "q4_0", "q8_0", "bf16"],
                   ["bf16", "f16", "q8_0", "q4_1", "q4_1", "q4_0", "q8_0"]],
    },
    {   # K-quants (hidden 256: one super-block per row), untied head, 4:1 GQA.
        "name": "kquant-untied", "seed": 12, "hidden": 256, "ffn": 256, "heads": 4,
        "kv_heads": 1, "tied": False, "embed": "q5_k", "output": "q6_k",
        "layers": [["q4_k", "q5_k", "q6_k", "q4_k", "q5_k", "q6_k", "q4_k"],
                   ["q5_k", "q6_k", "q4_k", "q6_k", "q4_k", "q5_k", "q6_k"]],
    },
]


def per_type_models():
    """One single-type model per type (diagnostic set): embed, output and every matrix."""
    models = []
    for i, name in enumerate(TYPES):
        tied = i % 2 == 0
        models.append({"name": f"only-{name}", "seed": 100 + i, "hidden": 256, "ffn": 256,
                       "heads": 4, "kv_heads": 2, "tied": tied, "embed": name,
                       "output": None if tied else name, "layers": [[name] * 7]})
    return models


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def rng_for(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def f16_bytes(x):
    return np.asarray(x, dtype=np.float16).reshape(-1, 1).view(np.uint8)


def pack_scales_k4(sc, m):
    """ggml's 12-byte packing of 8 six-bit scales and mins, (n, 8) each -> (n, 12)."""
    out = np.zeros((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    return out


def random_k_blocks(qtype, n_blocks, std, rng):
    """n_blocks valid blocks of a K-quant from random bytes, weights ~ zero-mean with std."""
    if qtype == T.Q6_K:
        # x = d * scale * (q - 32), q uniform in [0, 63] (std 18.5), scale int8 (rms ~74).
        ql = rng.integers(0, 256, (n_blocks, 128), dtype=np.uint8)
        qh = rng.integers(0, 256, (n_blocks, 64), dtype=np.uint8)
        scales = rng.integers(-128, 128, (n_blocks, 16)).astype(np.int8).view(np.uint8)
        d = f16_bytes(np.full(n_blocks, std / (74.0 * 18.5)))
        return np.concatenate([ql, qh, scales, d], axis=1)
    nmax = 15 if qtype == T.Q4_K else 31
    # x = d * sc * q - dmin * m; dmin = (nmax + 1) d and m ~ sc * mean(q) / (nmax + 1) centre
    # each sub-block (with +-2 jitter); the 6-bit values use all their bits.
    sc = rng.integers(0, 64, (n_blocks, 8)).astype(np.uint8)
    m = np.clip(np.rint(sc * (nmax / 2) / (nmax + 1)) + rng.integers(-2, 3, (n_blocks, 8)),
                0, 63).astype(np.uint8)
    q_std = np.sqrt(((nmax + 1) ** 2 - 1) / 12.0)
    d = std / (36.6 * q_std)  # 36.6: rms of a uniform 6-bit scale
    head = np.concatenate([f16_bytes(np.full(n_blocks, d)),
                           f16_bytes(np.full(n_blocks, d * (nmax + 1))),
                           pack_scales_k4(sc, m)], axis=1)
    qs = rng.integers(0, 256, (n_blocks, 128), dtype=np.uint8)
    if qtype == T.Q4_K:
        return np.concatenate([head, qs], axis=1)
    qh = rng.integers(0, 256, (n_blocks, 32), dtype=np.uint8)
    return np.concatenate([head, qh, qs], axis=1)


def make_matrix(type_name, rows, cols, std, rng):
    """(raw array for GGUFWriter.add_tensor, its GGML type)."""
    qtype = TYPES[type_name]
    if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        raw = random_k_blocks(qtype, rows * cols // block_elems, std, rng)
        return raw.reshape(rows, cols // block_elems * block_bytes), qtype
    w = (rng.standard_normal((rows, cols)) * std).astype(np.float32)
    return quantize(w, qtype), qtype


def byte_tokens():
    """GPT-2's byte-to-unicode map: token i is byte i."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def write_model(spec, path):
    """Writes the GGUF; returns {tensor name: (ggml type, float64 dequantized array)}."""
    h, ffn, heads, kv = spec["hidden"], spec["ffn"], spec["heads"], spec["kv_heads"]
    head_dim = h // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(spec["name"])
    w.add_block_count(len(spec["layers"]))
    w.add_context_length(128)
    w.add_embedding_length(h)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(VOCAB)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(byte_tokens())
    w.add_token_types([gguf.TokenType.NORMAL] * VOCAB)
    w.add_token_merges(["Ġ Ġ"])  # llama.cpp requires the key; token ids are fed directly
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_add_bos_token(False)

    seed = spec["seed"]
    tensors = {}

    def add(name, raw, qtype):
        w.add_tensor(name, raw, raw_dtype=qtype)
        tensors[name] = (qtype, dequantize(raw, qtype).astype(np.float64))

    def add_norm(name, center, spread):
        x = (center + spread * rng_for(seed, name).standard_normal(h)).astype(np.float32)
        add(name, x, T.F32)

    embed_std = (0.5 if spec["tied"] else 2.5) / np.sqrt(h)
    add("token_embd.weight",
        *make_matrix(spec["embed"], VOCAB, h, embed_std, rng_for(seed, "token_embd.weight")))
    for l, types in enumerate(spec["layers"]):
        add_norm(f"blk.{l}.attn_norm.weight", 1.0, 0.1)
        shapes = {"attn_q": (h, h), "attn_k": (kv * head_dim, h), "attn_v": (kv * head_dim, h),
                  "attn_output": (h, h), "ffn_gate": (ffn, h), "ffn_up": (ffn, h),
                  "ffn_down": (h, ffn)}
        for role, type_name in zip(ROLES, types):
            rows, cols = shapes[role]
            name = f"blk.{l}.{role}.weight"
            add(name, *make_matrix(type_name, rows, cols, GAIN[role] / np.sqrt(cols),
                                   rng_for(seed, name)))
        add_norm(f"blk.{l}.ffn_norm.weight", 1.0, 0.1)
    # A tied untrained model mostly repeats its input token; a large final norm spreads logits.
    add_norm("output_norm.weight", 5.0 if spec["tied"] else 1.0, 0.5 if spec["tied"] else 0.1)
    if not spec["tied"]:
        add("output.weight",
            *make_matrix(spec["output"], VOCAB, h, 2.5 / np.sqrt(h), rng_for(seed, "output.weight")))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def round_activations(x, qtype, scheme):
    """x (n, cols) as the matmul with a `qtype` weight sees it: "exact" (float64), "llama.cpp"
    (ggml's vec_dot_type: Q8_0 / Q8_1 with an f16 scale per 32, Q8_K per 256, f16, bf16) or
    "tokenswift" (8 bits per 32 with an f32 scale for Q8_0/Q4_0/Q4_1, f32 otherwise)."""
    if scheme == "exact" or qtype == T.F32:
        return x
    x32 = x.astype(np.float32)
    if qtype in (T.Q8_0, T.Q4_0, T.Q4_1):
        b = x32.reshape(x.shape[0], -1, 32)
        d = np.abs(b).max(-1, keepdims=True) / np.float32(127)
        inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), 0).astype(np.float32)
        if scheme == "llama.cpp":
            q = np.trunc(b * inv + np.copysign(np.float32(0.5), b * inv))  # roundf
            d = d.astype(np.float16).astype(np.float32)
        else:
            q = np.rint(b * inv)
        return (d.astype(np.float64) * q).reshape(x.shape)
    if scheme == "tokenswift":
        return x32.astype(np.float64)
    if qtype == T.F16:
        return x32.astype(np.float16).astype(np.float64)
    if qtype == T.BF16:
        u = x32.view(np.uint32).astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
        return u.astype(np.uint32).view(np.float32).astype(np.float64)
    b = x32.reshape(x.shape[0], -1, 256)  # Q8_K: signed max -> -127, float scale
    idx = np.abs(b).argmax(-1)[..., None]
    mx = np.take_along_axis(b, idx, -1)
    iscale = np.where(mx != 0, np.float32(-127) / np.where(mx != 0, mx, 1), 0).astype(np.float32)
    q = np.minimum(127, np.rint(b * iscale))
    d = np.where(iscale != 0, np.float32(1) / np.where(iscale != 0, iscale, 1), 0)
    return (d.astype(np.float32).astype(np.float64) * q).reshape(x.shape)


def numpy_forward(spec, tensors, ids, scheme="exact"):
    """float64 llama forward pass on the dequantized weights; (len(ids), vocab) logits.
    Matmul inputs are rounded per `scheme` (see round_activations)."""
    h, heads, kv = spec["hidden"], spec["heads"], spec["kv_heads"]
    hd = h // heads
    W = {k: v[1] for k, v in tensors.items()}

    def mm(x, name):
        return round_activations(x, tensors[name][0], scheme) @ W[name].T

    def norm(x, wt):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * wt

    n = len(ids)
    inv = spec.get("rope_theta", 10000.0) ** (-np.arange(0, hd, 2) / hd)
    ang = np.arange(n)[:, None] * inv[None, :]  # (n, hd/2)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]

    def rope(x):  # (n, heads, hd), interleaved pairs (x[2i], x[2i+1])
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    x = W["token_embd.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(len(spec["layers"])):
        p = f"blk.{l}."
        a = norm(x, W[p + "attn_norm.weight"])
        q = rope(mm(a, p + "attn_q.weight").reshape(n, heads, hd))
        k = rope(mm(a, p + "attn_k.weight").reshape(n, kv, hd))
        v = mm(a, p + "attn_v.weight").reshape(n, kv, hd)
        k = np.repeat(k, heads // kv, axis=1)
        v = np.repeat(v, heads // kv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        att = np.einsum("hqk,khd->qhd", s, v).reshape(n, h)
        x = x + mm(att, p + "attn_output.weight")
        f = norm(x, W[p + "ffn_norm.weight"])
        g = mm(f, p + "ffn_gate.weight")
        u = mm(f, p + "ffn_up.weight")
        x = x + mm(g / (1 + np.exp(-g)) * u, p + "ffn_down.weight")
    head = "output.weight" if "output.weight" in W else "token_embd.weight"
    return mm(norm(x, W["output_norm.weight"]), head)


def llamacpp_logits(path, ids):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_batch=64, n_threads=2,
                          logits_all=True, flash_attn=False, type_k=0, type_v=0,  # GGML F32
                          seed=0, verbose=False)
    llm.eval(ids)
    out = np.array(llm.scores[:len(ids)], dtype=np.float32)
    llm.close()
    return out


def row_rel(a, b):
    """Per row: max |a - b| / max |b|."""
    return np.abs(a - b).max(-1) / np.abs(b).max(-1)


def run_model(spec, out_dir):
    name = spec["name"]
    path = out_dir / f"{name}.gguf"
    tensors = write_model(spec, path)
    exact_ref = numpy_forward(spec, tensors, TOKENS)
    logits = llamacpp_logits(path, TOKENS)
    rel = row_rel(logits.astype(np.float64), exact_ref)
    emulated = row_rel(logits.astype(np.float64),
                       numpy_forward(spec, tensors, TOKENS, scheme="llama.cpp"))
    if rel.max() > MAX_LLAMACPP_VS_NUMPY:
        raise RuntimeError(f"{name}: llama.cpp and the numpy forward differ: {rel.max():.3g}")
    top2 = np.sort(logits, axis=-1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    logits.astype("<f4").tofile(out_dir / f"{name}.logits.f32")
    import llama_cpp
    gguf_bytes = path.read_bytes()
    record = {
        "model": name,
        "gguf_file": path.name,
        "gguf_bytes": len(gguf_bytes),
        "gguf_fnv1a64": f"{fnv1a64(gguf_bytes):016x}",
        "spec": spec,
        "tensors": [
            {"name": n, "type": t.name.lower(),
             "dequant_f32_fnv1a64": f"{fnv1a64(a.astype('<f4').tobytes()):016x}",
             "dequant_head": [float(v) for v in a.reshape(-1)[:4].astype(np.float32)]}
            for n, (t, a) in tensors.items()],
        "token_ids": TOKENS,
        "vocab_size": VOCAB,
        "logits_file": f"{name}.logits.f32",
        "logits_layout": "little-endian float32, row-major (position, vocab_size)",
        "top2_margins": [round(float(m), 6) for m in margins],
        "reference": {
            "engine": "llama.cpp via llama-cpp-python " + llama_cpp.__version__,
            "settings": "n_threads=2, f32 KV cache, flash_attn off, one batch of all tokens",
            "gguf_py": getattr(gguf, "__version__", "?"),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "numpy_check": {
            "max_rel_err": float(rel.max()),
            "max_rel_err_llamacpp_rounding_emulated": float(emulated.max()),
            "definition": "max over positions of max|llama.cpp - numpy| / max|numpy| of the "
                          "row; numpy: float64 forward on gguf-py's dequantized weights "
                          "(emulated: matmul inputs rounded as ggml's vec_dot_type)",
        },
    }
    (out_dir / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{name:16s} {len(gguf_bytes) / 1024:7.1f} KiB  llama.cpp vs numpy f64: "
          f"max row-rel {rel.max():.3g} (emulating its rounding {emulated.max():.3g})  "
          f"min top-2 margin {margins.min():.3g}")
    return name


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "tests/fixtures/gguf_golden"))
    ap.add_argument("--set", choices=["mixed", "per-type"], default="mixed")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = MIXED if args.set == "mixed" else per_type_models()
    names = [run_model(s, out_dir) for s in specs]
    (out_dir / "index.json").write_text(json.dumps({"cases": names}, indent=1) + "\n")


if __name__ == "__main__":
    main()
