#!/usr/bin/env python3
"""Reference figures from llama.cpp (PyPI llama-cpp-python) on the default model, for tests.

Writes tests/fixtures/llamacpp/smollm2_gpl3.json: llama.cpp's token ids for
tests/fixtures/text/gpl3_excerpt.txt (the model's own BOS handling), the natural-log probability
of every token given all before it (one pass over the whole text), and the perplexity; plus
llama.cpp's greedy continuation of a short prompt.

    python3 scripts/make_llamacpp_fixtures.py [--model PATH]
"""
import argparse
import json
import math
import os

import llama_cpp
import numpy as np

from llamacpp_common import default_model, last_logits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=default_model())
    ap.add_argument("--text-file", default="tests/fixtures/text/gpl3_excerpt.txt")
    ap.add_argument("--out", default="tests/fixtures/llamacpp/smollm2_gpl3.json")
    args = ap.parse_args()
    text = open(args.text_file, encoding="utf-8").read()
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=4096, n_batch=512, n_threads=2,
                          logits_all=True, verbose=False)
    add_bos = llm._model.add_bos_token()
    ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
    llm.eval(ids)
    logits = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    m = logits.max(axis=1, keepdims=True)
    logz = (np.log(np.exp(logits - m).sum(axis=1, keepdims=True)) + m)[:, 0]
    lps = [float(logits[i, ids[i + 1]] - logz[i]) for i in range(len(ids) - 1)]
    mean = float(np.mean(lps))

    prompt = "The capital of France is"
    g = llama_cpp.Llama(model_path=args.model, n_ctx=256, n_threads=2, verbose=False)
    pids = g.tokenize(prompt.encode(), add_bos=add_bos, special=True)
    g.eval(pids)
    greedy, margins = [], []
    for _ in range(24):
        row = last_logits(llama_cpp, g)
        top2 = np.sort(row)[-2:]
        tok = int(np.argmax(row))
        greedy.append(tok)
        margins.append(round(float(top2[1] - top2[0]), 5))
        g.eval([tok])

    out = {
        "generator": "scripts/make_llamacpp_fixtures.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model": os.path.basename(args.model),
        "text_file": args.text_file,
        "add_bos": bool(add_bos),
        "token_ids": ids,
        "logprobs": [round(x, 6) for x in lps],
        "mean_logprob": mean,
        "perplexity": math.exp(-mean),
        "greedy": {"prompt": prompt, "prompt_ids": pids, "token_ids": greedy,
                   "top2_margins": margins},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"{args.out}: {len(ids)} tokens, perplexity {out['perplexity']:.4f}")


if __name__ == "__main__":
    main()
