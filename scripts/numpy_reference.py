#!/usr/bin/env python3
"""A plain numpy (float64) forward pass of llama / qwen2 HF model directories.

Written independently of HF transformers, from the papers and the reference code of each rope
variant (Meta's llama 3.1 `apply_scaling`, the YaRN authors' `find_correction_range`), to
cross-check golden logits: if this and transformers agree, transformers applied the config the
way we meant it. Reads safetensors with its own tiny parser (f32 / f16 / bf16).

Usage as a script:  numpy_reference.py MODEL_DIR TOKEN_ID...   (prints the last row's top 5)
"""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np


def read_safetensors(path):
    """name -> float64 array."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2")
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def rope_tables(cfg):
    """(inv_freq (head_dim/2,), mscale) for the config's rope variant."""
    n_heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
    theta = float(cfg.get("rope_theta", 10000.0))
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    mscale = 1.0
    if kind == "default":
        pass
    elif kind == "linear":
        inv_freq = inv_freq / rs["factor"]
    elif kind == "llama3":
        # Meta, llama-models: models/llama3/reference_impl/model.py apply_scaling
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old_ctx = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
        new = []
        for f in inv_freq:
            wavelen = 2 * math.pi / f
            if wavelen < high_wavelen:
                new.append(f)
            elif wavelen > low_wavelen:
                new.append(f / factor)
            else:
                smooth = (old_ctx / wavelen - low) / (high - low)
                new.append((1 - smooth) * f / factor + smooth * f)
        inv_freq = np.array(new)
    elif kind == "yarn":
        # Peng et al., YaRN (arXiv 2309.00071), reference scaled_rope/LlamaYaRNScaledRotaryEmbedding
        s = rs["factor"]
        orig = rs["original_max_position_embeddings"]
        beta_fast, beta_slow = rs.get("beta_fast", 32), rs.get("beta_slow", 1)

        def correction_dim(rotations):
            return head_dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        lo = max(math.floor(correction_dim(beta_fast)), 0)
        hi = min(math.ceil(correction_dim(beta_slow)), head_dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(head_dim // 2) - lo) / (hi - lo), 0, 1)
        extrapolation_weight = 1 - ramp  # 1 = keep the original frequency
        inv_freq = (inv_freq / s) * (1 - extrapolation_weight) + inv_freq * extrapolation_weight
        mscale = rs.get("attention_factor") or (0.1 * math.log(s) + 1.0 if s > 1 else 1.0)
    else:
        raise ValueError(f"unsupported rope type {kind}")
    return inv_freq, mscale


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def apply_rope(x, positions, inv_freq, mscale):
    """x (T, heads, head_dim), pairs (i, i + head_dim/2) as HF's rotate_half."""
    ang = positions[:, None] * inv_freq[None, :]          # (T, hd/2)
    cos = np.cos(ang)[:, None, :] * mscale
    sin = np.sin(ang)[:, None, :] * mscale
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def forward(model_dir, token_ids):
    """Logits (T, vocab), float64, for one sequence starting at position 0."""
    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    w = read_safetensors(model_dir / "model.safetensors")
    n_heads = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_heads
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
    eps = cfg["rms_norm_eps"]
    inv_freq, mscale = rope_tables(cfg)
    ids = np.asarray(token_ids)
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    x = w["model.embed_tokens.weight"][ids]               # (T, hidden)
    causal = np.tril(np.ones((T, T), dtype=bool))
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name):
            y = h @ w[p + f"self_attn.{name}.weight"].T
            b = w.get(p + f"self_attn.{name}.bias")
            return y if b is None else y + b

        q = proj("q_proj").reshape(T, n_heads, head_dim)
        k = proj("k_proj").reshape(T, n_kv, head_dim)
        v = proj("v_proj").reshape(T, n_kv, head_dim)
        q = apply_rope(q, pos, inv_freq, mscale)
        k = apply_rope(k, pos, inv_freq, mscale)
        out = np.empty_like(q)
        group = n_heads // n_kv
        for hd in range(n_heads):
            kv = hd // group
            s = q[:, hd, :] @ k[:, kv, :].T / math.sqrt(head_dim)   # (T, T)
            s = np.where(causal, s, -np.inf)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, hd, :] = s @ v[:, kv, :]
        x = x + out.reshape(T, n_heads * head_dim) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight")
    if head is None or cfg.get("tie_word_embeddings", False):
        head = w["model.embed_tokens.weight"]
    return x @ head.T


if __name__ == "__main__":
    logits = forward(sys.argv[1], [int(t) for t in sys.argv[2:]])
    last = logits[-1]
    top = np.argsort(-last)[:5]
    print(" ".join(f"{int(t)}:{last[t]:.4f}" for t in top))
