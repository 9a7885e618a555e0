#!/usr/bin/env python3
"""tokenswift vs llama.cpp (llama-cpp-python) on the same GGUF, prompt ids and thread count.

Runs, in one invocation:
  1. `tokenswift bench --mode ar` (prompt 512, generate 512 by default), which also writes the
     prompt token ids it used;
  2. llama.cpp on exactly those ids: prefill, then greedy decode one token at a time, timed by
     llama.cpp's own perf counters (t_p_eval, t_eval) so Python overhead is not counted;
  3. perplexity of both engines on the same text file (`tokenswift score` vs llama.cpp logits).
Writes JSON and Markdown with the decode tokens/s ratio (ours / llama.cpp).
"""
import argparse
import json
import math
import os
import subprocess
import sys

from llamacpp_common import default_model, last_logits


def llama_decode(llama_cpp, model, prompt_ids, gen_tokens, threads):
    import numpy as np
    llm = llama_cpp.Llama(model_path=model, n_ctx=len(prompt_ids) + gen_tokens + 8,
                          n_batch=512, n_threads=threads, n_threads_batch=threads,
                          logits_all=False, verbose=False)
    llama_cpp.llama_perf_context_reset(llm.ctx)
    llm.eval(prompt_ids)
    generated = []
    for _ in range(gen_tokens):
        tok = int(np.argmax(last_logits(llama_cpp, llm)))
        generated.append(tok)
        llm.eval([tok])
    perf = llama_cpp.llama_perf_context(llm.ctx)
    return {
        "prefill_seconds": perf.t_p_eval_ms / 1000.0,
        "prefill_tokens_per_second": perf.n_p_eval / (perf.t_p_eval_ms / 1000.0),
        "seconds": perf.t_eval_ms / 1000.0,
        "tokens_per_second": perf.n_eval / (perf.t_eval_ms / 1000.0),
        "n_eval": perf.n_eval,
        "generated_ids": generated,
    }


def llama_perplexity(llama_cpp, model, text, threads):
    import numpy as np
    llm = llama_cpp.Llama(model_path=model, n_ctx=8192, n_batch=512, n_threads=threads,
                          logits_all=True, verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=llm._model.add_bos_token(), special=True)
    llm.eval(ids)
    logits = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    logz = np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1)) + logits.max(axis=1)
    lps = [logits[i, ids[i + 1]] - logz[i] for i in range(len(ids) - 1)]
    mean = float(np.mean(lps))
    return {"tokens": len(lps), "mean_logprob": mean, "perplexity": math.exp(-mean), "ids": ids}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenswift", default="build/launch/tokenswift")
    ap.add_argument("--model", default=default_model())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=512)
    ap.add_argument("--text-file", default="tests/fixtures/text/gpl3_excerpt.txt")
    ap.add_argument("--out", default="out/bench-llamacpp")
    args = ap.parse_args()
    try:
        import llama_cpp
    except ImportError:
        sys.exit("bench_llamacpp.py: llama-cpp-python is missing (pip install llama-cpp-python)")
    os.makedirs(args.out, exist_ok=True)
    ours_json = os.path.join(args.out, "tokenswift-bench.json")
    ids_file = os.path.join(args.out, "prompt-ids.txt")
    subprocess.run([args.tokenswift, "bench", "--model", args.model, "--mode", "ar",
                    "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens", str(args.gen_tokens),
                    "--threads", str(args.threads), "--temperature", "0", "--json", ours_json,
                    "--prompt-ids-out", ids_file], check=True)
    ours = json.load(open(ours_json))
    prompt_ids = [int(x) for x in open(ids_file).read().split()]
    theirs = llama_decode(llama_cpp, args.model, prompt_ids, args.gen_tokens, args.threads)

    score_json = os.path.join(args.out, "tokenswift-score.json")
    subprocess.run([args.tokenswift, "score", "--model", args.model, "--text-file", args.text_file,
                    "--threads", str(args.threads), "--stats-json", score_json], check=True,
                   stdout=subprocess.DEVNULL)
    ours_ppl = json.load(open(score_json))
    theirs_ppl = llama_perplexity(llama_cpp, args.model, open(args.text_file, encoding="utf-8").read(),
                                  args.threads)
    same_tokens = ours_ppl["token_ids"] == theirs_ppl["ids"][1:]
    n_same = 0
    for a, b in zip(ours["generated_ids"], theirs["generated_ids"]):
        if a != b:
            break
        n_same += 1

    report = {
        "model": args.model, "threads": args.threads,
        "prompt_tokens": args.prompt_tokens, "gen_tokens": args.gen_tokens,
        "tokenswift": {k: ours[k] for k in ("prefill_tokens_per_second", "tokens_per_second", "seconds")},
        "llama_cpp": {k: theirs[k] for k in ("prefill_tokens_per_second", "tokens_per_second", "seconds")},
        "llama_cpp_version": llama_cpp.__version__,
        "decode_ratio": ours["tokens_per_second"] / theirs["tokens_per_second"],
        "prefill_ratio": ours["prefill_tokens_per_second"] / theirs["prefill_tokens_per_second"],
        "greedy_common_prefix_tokens": n_same,
        "perplexity": {"text_file": args.text_file, "tokenswift": ours_ppl["perplexity"],
                       "llama_cpp": theirs_ppl["perplexity"], "tokens": ours_ppl["tokens"],
                       "same_token_ids": same_tokens,
                       "relative_difference": abs(ours_ppl["perplexity"] / theirs_ppl["perplexity"] - 1)},
    }
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    md = [
        f"| engine | threads | prefill tok/s ({args.prompt_tokens}) | decode tok/s ({args.gen_tokens}) | perplexity |",
        "|---|---|---|---|---|",
        f"| tokenswift | {args.threads} | {ours['prefill_tokens_per_second']:.1f} | {ours['tokens_per_second']:.1f} | {ours_ppl['perplexity']:.4f} |",
        f"| llama.cpp {llama_cpp.__version__} | {args.threads} | {theirs['prefill_tokens_per_second']:.1f} | {theirs['tokens_per_second']:.1f} | {theirs_ppl['perplexity']:.4f} |",
        "",
        f"decode ratio (tokenswift / llama.cpp): **{report['decode_ratio']:.2f}x**; prefill ratio {report['prefill_ratio']:.2f}x; "
        f"greedy outputs agree on the first {n_same} of {args.gen_tokens} tokens; perplexity differs by "
        f"{100 * report['perplexity']['relative_difference']:.2f}% (same token ids: {same_tokens}).",
    ]
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
