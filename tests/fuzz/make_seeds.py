#!/usr/bin/env python3
"""Writes small seed inputs for the fuzz targets into OUT/{gguf,safetensors,hf_config}/.

The GGUF seeds are written with the `gguf` package (llama.cpp's writer) when it is installed;
the safetensors and config seeds need only the standard library. The safetensors seed matches the
fixed config in fuzz_safetensors.cc (hidden 8, ff 16, 1 layer, 2 heads / 1 kv head, vocab 8, tied).

usage: make_seeds.py OUT
"""
import json
import os
import struct
import sys


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def tensors_llama(hidden=8, ff=16, heads=2, kv_heads=1, vocab=8, hf=True):
    hd = hidden // heads
    if hf:
        names = {"embed": "model.embed_tokens.weight", "norm": "model.norm.weight"}
        p = "model.layers.0."
        layer = [(p + "input_layernorm.weight", [hidden]),
                 (p + "self_attn.q_proj.weight", [heads * hd, hidden]),
                 (p + "self_attn.k_proj.weight", [kv_heads * hd, hidden]),
                 (p + "self_attn.v_proj.weight", [kv_heads * hd, hidden]),
                 (p + "self_attn.o_proj.weight", [hidden, heads * hd]),
                 (p + "post_attention_layernorm.weight", [hidden]),
                 (p + "mlp.gate_proj.weight", [ff, hidden]),
                 (p + "mlp.up_proj.weight", [ff, hidden]),
                 (p + "mlp.down_proj.weight", [hidden, ff])]
    else:
        names = {"embed": "token_embd.weight", "norm": "output_norm.weight"}
        p = "blk.0."
        layer = [(p + "attn_norm.weight", [hidden]),
                 (p + "attn_q.weight", [heads * hd, hidden]),
                 (p + "attn_k.weight", [kv_heads * hd, hidden]),
                 (p + "attn_v.weight", [kv_heads * hd, hidden]),
                 (p + "attn_output.weight", [hidden, heads * hd]),
                 (p + "ffn_norm.weight", [hidden]),
                 (p + "ffn_gate.weight", [ff, hidden]),
                 (p + "ffn_up.weight", [ff, hidden]),
                 (p + "ffn_down.weight", [hidden, ff])]
    return [(names["embed"], [vocab, hidden]), (names["norm"], [hidden])] + layer


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def safetensors_seed(dtype):
    size = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, shape in tensors_llama():
        nbytes = numel(shape) * size
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + nbytes]}
        data += bytes((i * 7 + 1) % 256 for i in range(nbytes))
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def gguf_seeds(out):
    try:
        import gguf
        import numpy as np
    except ImportError:
        print("make_seeds.py: the gguf package is missing; no GGUF seeds", file=sys.stderr)
        return
    for arch, dtype in (("llama", np.float32), ("qwen2", np.float16)):
        path = os.path.join(out, "gguf", f"tiny_{arch}.gguf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        w = gguf.GGUFWriter(path, arch)
        w.add_block_count(1)
        w.add_context_length(64)
        w.add_embedding_length(8)
        w.add_feed_forward_length(16)
        w.add_head_count(2)
        w.add_head_count_kv(1)
        w.add_rope_freq_base(10000.0)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_dimension_count(4)
        if arch == "qwen2":
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(2.0)
            w.add_rope_scaling_orig_ctx_len(32)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list([f"t{i}" for i in range(8)])
        w.add_token_types([1] * 8)
        w.add_token_merges(["t 1", "t 2"])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        for name, shape in tensors_llama(hf=False):
            w.add_tensor(name, (np.arange(numel(shape)) % 5 * 0.25 + 0.5).astype(dtype).reshape(shape))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    for dtype in ("F32", "F16", "BF16"):
        write(os.path.join(out, "safetensors", f"tiny_{dtype}.safetensors"), safetensors_seed(dtype))
    configs = {
        "llama": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
                  "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                  "vocab_size": 49152, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
                  "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
                  "max_position_embeddings": 8192, "rope_scaling": None, "hidden_act": "silu"},
        "llama3": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
                   "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                   "vocab_size": 128256, "eos_token_id": [128001, 128008, 128009],
                   "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 8192}},
        "qwen2_yarn": {"model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
                       "num_hidden_layers": 28, "num_attention_heads": 12,
                       "num_key_value_heads": 2, "vocab_size": 151936, "head_dim": 128,
                       "use_sliding_window": False, "max_position_embeddings": 32768,
                       "rope_scaling": {"type": "yarn", "factor": 4.0,
                                        "original_max_position_embeddings": 32768}},
        "generation": {"eos_token_id": [151645, 151643], "bos_token_id": 151643},
    }
    for name, c in configs.items():
        write(os.path.join(out, "hf_config", name + ".json"), json.dumps(c).encode())
    gguf_seeds(out)


if __name__ == "__main__":
    main()
