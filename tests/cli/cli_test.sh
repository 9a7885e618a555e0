#!/usr/bin/env bash
# tokenswift CLI contract (DESIGN.md section 5): bad input -> exit 2 and one line on stderr that
# names the flag/file; good runs write the promised JSON fields and token ids.
# Usage: cli_test.sh PATH_TO_TOKENSWIFT
set -uo pipefail
ts="$1"
model="${TS_MODEL_PATH:-${TS_CACHE_DIR:-$HOME/.cache/tokenswift}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_error CODE NEEDLE -- ARGS...: exit code CODE, exactly one stderr line containing NEEDLE.
expect_error() {
  local code="$1" needle="$2"
  shift 3
  "$ts" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines
  lines=$(grep -c '' "$tmp/err")
  if [ "$rc" -ne "$code" ]; then
    bad "'$*': exit $rc, expected $code; stderr: $(head -c 300 "$tmp/err")"
  elif [ "$lines" -ne 1 ]; then
    bad "'$*': $lines stderr lines, expected 1: $(head -c 300 "$tmp/err")"
  elif ! grep -qF -- "$needle" "$tmp/err"; then
    bad "'$*': stderr lacks '$needle': $(cat "$tmp/err")"
  else
    ok
  fi
}

# Model-file errors need no real model.
printf 'GGUF' >"$tmp/trunc.gguf"
expect_error 2 "trunc.gguf" -- generate --model "$tmp/trunc.gguf" --prompt hi -n 4
expect_error 2 "$tmp/missing.gguf" -- generate --model "$tmp/missing.gguf" --prompt hi -n 4
mkdir -p "$tmp/emptydir"
expect_error 2 "emptydir" -- inspect "$tmp/emptydir"
expect_error 2 "--preset" -- make-test-model --preset no-such-model --out "$tmp/x"
expect_error 2 "--text-file" -- score --model "$tmp/trunc.gguf" --text-file "$tmp/none.txt"
expect_error 2 "--mode" -- generate --model "$tmp/trunc.gguf" --prompt hi --mode nonsense
expect_error 2 "no-such-flag" -- generate --no-such-flag
expect_error 2 "--heads" -- generate --model "$tmp/trunc.gguf" --prompt hi --mode tokenswift
# --tp without a launcher: refused before the model is opened.
expect_error 2 "--tp 2" -- generate --model "$tmp/trunc.gguf" --prompt hi --tp 2
expect_error 2 "--tp" -- generate --model "$tmp/trunc.gguf" --prompt hi --tp 0

# Sampling settings are rejected before any work (the model is not even opened).
for args in "--temperature -1|--temperature" "--temperature nan|--temperature" \
            "--top-p 0|--top-p" "--top-p 1.5|--top-p" "--min-p 1.5|--min-p" \
            "--penalty 0|--penalty" "--top-k -3|--top-k" "--penalty-window -1|--penalty-window"; do
  flag="${args%%|*}"
  needle="${args##*|}"
  # shellcheck disable=SC2086
  expect_error 2 "$needle" -- generate --model "$tmp/trunc.gguf" --prompt hi -n 4 $flag
done

if [ -f "$model" ]; then
  # --device: a misspelling is bad input; cuda without a GPU (CI) is one line naming the device.
  expect_error 2 "--device: expected cpu, cuda or cuda:N, got 'tpu'" -- \
    generate --model "$model" --prompt hi -n 4 --device tpu
  if ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
    expect_error 1 "--device cuda: no usable CUDA device" -- \
      generate --model "$model" --prompt hi -n 4 --device cuda
    expect_error 1 "--device cuda:1: no usable CUDA device" -- \
      score --model "$model" --text-file "$0" --device cuda:1
  fi
  expect_error 2 "--max-new-tokens" -- generate --model "$model" --prompt hi -n 9000
  expect_error 2 "--prompt" -- generate --model "$model" -n 4
  expect_error 2 "--threads" -- generate --model "$model" --prompt hi -n 4 --threads 100000
  # Statistics that cannot be written are an error (exit 1), never a silent success.
  "$ts" generate --model "$model" --prompt hi -n 2 --threads 2 --stats-json /proc/version \
      >/dev/null 2>"$tmp/err"
  rc=$?
  if [ "$rc" -eq 1 ] && tail -n 1 "$tmp/err" | grep -q "/proc/version"; then ok; else
    bad "--stats-json /proc/version: exit $rc, stderr: $(cat "$tmp/err")"
  fi

  # A good run: 12 greedy tokens, ids file, stats JSON with the contract's fields.
  if "$ts" generate --model "$model" --prompt "The capital of France is" -n 12 --temperature 0 \
      --ignore-eos --threads 2 --output "$tmp/ids.txt" --stats-json "$tmp/stats.json" \
      >"$tmp/out" 2>"$tmp/err"; then
    ok
  else
    bad "good generate run failed: $(cat "$tmp/err")"
  fi
  [ "$(grep -c '' "$tmp/ids.txt")" -eq 12 ] && ok || bad "--output: expected 12 ids"
  grep -q "Paris" "$tmp/out" && ok || bad "greedy text lacks 'Paris': $(cat "$tmp/out")"
  grep -q "tok/s" "$tmp/err" && ok || bad "no summary line with tok/s: $(cat "$tmp/err")"
  if python3 - "$tmp/stats.json" <<'PY'; then ok; else bad "stats JSON fields"; fi
import json, sys
s = json.load(open(sys.argv[1]))
need = ["generated_tokens", "prompt_tokens", "seconds", "tokens_per_second", "steps",
        "mean_accepted_per_step", "acceptance_rate", "ngram_accepted_share", "distinct_1",
        "distinct_2", "distinct_3", "distinct_4", "peak_rss_bytes"]
missing = [k for k in need if k not in s]
assert not missing, missing
assert s["generated_tokens"] == 12 and s["prompt_tokens"] == 5 and s["steps"] == 12, s
assert 0 < s["distinct_1"] <= 1 and s["peak_rss_bytes"] > 0 and s["tokens_per_second"] > 0, s
PY

  # --resume: a job killed mid-run (SIGKILL, so nothing is flushed at exit) and resumed, here in
  # TokenSwift mode with a cut-off last line, ends with exactly the ids of one uninterrupted AR
  # run of the same seed and sampling settings.
  expect_error 2 "--resume" -- generate --model "$model" --prompt hi -n 4 --resume
  job=(generate --model "$model" --prompt "Write a poem about the sea." --chat -n 400
       --temperature 1 --min-p 0.1 --penalty 1.2 --seed 3 --ignore-eos --threads 2 -q)
  "$ts" "${job[@]}" --output "$tmp/whole.ids" 2>/dev/null || bad "uninterrupted run failed"
  "$ts" "${job[@]}" --output "$tmp/cut.ids" 2>/dev/null &
  victim=$!
  for _ in $(seq 200); do
    [ -f "$tmp/cut.ids" ] && [ "$(wc -l <"$tmp/cut.ids")" -ge 40 ] && break
    sleep 0.05
  done
  kill -9 "$victim" 2>/dev/null
  wait "$victim" 2>/dev/null
  kept=$(grep -c '' "$tmp/cut.ids")
  if [ "$kept" -ge 40 ] && [ "$kept" -lt 400 ]; then ok; else bad "killed run kept $kept ids"; fi
  printf '4' >>"$tmp/cut.ids"  # a line the crash cut off
  heads="$(dirname "$0")/../../models/heads/smollm2-135m-instruct-heads.safetensors"
  if "$ts" "${job[@]}" --output "$tmp/cut.ids" --resume --mode tokenswift --heads "$heads" \
      >/dev/null 2>"$tmp/err"; then ok; else bad "resumed run failed: $(cat "$tmp/err")"; fi
  cmp -s "$tmp/whole.ids" "$tmp/cut.ids" && ok || bad "resumed ids differ from the whole run's"
  "$ts" "${job[@]}" --output "$tmp/cut.ids" --resume 2>"$tmp/err" && grep -q "finished" "$tmp/err" \
    && ok || bad "resuming a finished job: $(cat "$tmp/err")"
  # The resume guard: FILE.job.json records the job; a resume with another seed, prompt,
  # sampling setting or model is refused naming what differs, and so is an output without it.
  [ -f "$tmp/whole.ids.job.json" ] && ok || bad "no sidecar whole.ids.job.json"
  cp "$tmp/whole.ids" "$tmp/guard.ids"
  cp "$tmp/whole.ids.job.json" "$tmp/guard.ids.job.json"
  # guard FLAG VALUE: the job's argument list with FLAG's value replaced (or FLAG dropped when
  # VALUE is "-"), resuming guard.ids.
  guard() {
    local out=() skip=0 a
    for a in "${job[@]}"; do
      if [ "$skip" -eq 1 ]; then skip=0; [ "$2" != "-" ] && out+=("$2"); continue; fi
      if [ "$a" = "$1" ]; then
        [ "$2" = "-" ] || { out+=("$a"); skip=1; }
        continue
      fi
      out+=("$a")
    done
    printf '%s\0' "${out[@]}" --output "$tmp/guard.ids" --resume
  }
  mapfile -d '' -t g < <(guard --seed 4)
  expect_error 2 "--seed" -- "${g[@]}"
  mapfile -d '' -t g < <(guard --penalty 1.1)
  expect_error 2 "--penalty" -- "${g[@]}"
  mapfile -d '' -t g < <(guard --ignore-eos -)
  expect_error 2 "--ignore-eos" -- "${g[@]}"
  mapfile -d '' -t g < <(guard --prompt "Write a poem about the moon.")
  expect_error 2 "another prompt" -- "${g[@]}"
  cp "$model" "$tmp/other.gguf" && printf '\0' >>"$tmp/other.gguf"
  mapfile -d '' -t g < <(guard --model "$tmp/other.gguf")
  expect_error 2 "another model" -- "${g[@]}"
  rm -f "$tmp/other.gguf"
  cmp -s "$tmp/whole.ids" "$tmp/guard.ids" && ok || bad "a refused resume changed the output"
  cp "$tmp/whole.ids" "$tmp/bare.ids"
  expect_error 2 "bare.ids.job.json" -- "${job[@]}" --output "$tmp/bare.ids" --resume
  printf '{"format": "something else"}' >"$tmp/bare.ids.job.json"
  expect_error 2 "not a tokenswift job file" -- "${job[@]}" --output "$tmp/bare.ids" --resume

  # Over-large numbers, non-finite values and unwritable outputs: one line, exit 2 or 1.
  expect_error 2 "--max-new-tokens" -- generate --model "$model" --prompt hi -n 2000000000
  expect_error 2 "--max-new-tokens" -- generate --model "$model" --prompt hi -n 99999999999
  expect_error 2 "--ctx-size" -- generate --model "$model" --prompt hi -n 4 --ctx-size -1
  expect_error 2 "--ctx-size" -- generate --model "$model" --prompt hi -n 4 --ctx-size 5000000000
  expect_error 2 "--comm-timeout" -- generate --model "$model" --prompt hi -n 4 --comm-timeout inf
  expect_error 2 "--comm-timeout" -- generate --model "$model" --prompt hi -n 4 --comm-timeout 0
  expect_error 2 "--seed" -- generate --model "$model" --prompt hi -n 4 --seed -5
  expect_error 2 "--top-k" -- generate --model "$model" --prompt hi -n 4 --top-k 99999999999999999999
  expect_error 2 "--temperature" -- generate --model "$model" --prompt hi -n 4 --temperature inf
  expect_error 1 "$tmp/nodir/x.ids" -- generate --model "$model" --prompt hi -n 4 --threads 2 \
    --output "$tmp/nodir/x.ids"
  expect_error 1 "/proc/version" -- generate --model "$model" --prompt hi -n 4 --threads 2 \
    --output /proc/version
  # --log-level is accepted after the subcommand too.
  "$ts" generate --model "$model" -p hi -n 2 -t 2 -q --log-level info >/dev/null 2>"$tmp/err" \
    && grep -q "\[info\]" "$tmp/err" && ok || bad "--log-level after generate: $(cat "$tmp/err")"
  # Outputs are checked before the work: nothing is computed only to be lost.
  expect_error 1 "--json" -- bench --model "$model" --mode ar --gen-tokens 64 -t 2 \
    --json /proc/version/x.json
  grep -q "tok/s" "$tmp/out" && bad "bench ran before refusing --json" || ok
  expect_error 1 "--output" -- train-heads --model "$model" -o /proc/version/h.safetensors
  expect_error 1 "--stats-json" -- score --model "$model" --text-file "$0" --stats-json /proc/x
  # The check leaves no file behind when the job then fails (here on -n past the context).
  expect_error 2 "--max-new-tokens" -- generate --model "$model" --prompt hi -n 9000 \
    --stats-json "$tmp/probe.json"
  [ -e "$tmp/probe.json" ] && bad "the writability check left probe.json" || ok
  expect_error 2 "--gen-tokens" -- bench --model "$model" --mode ar --gen-tokens 3000000000
  expect_error 2 "--prompt-tokens" -- bench --model "$model" --mode ar --prompt-tokens -4
  printf '17\nfoo\n' >"$tmp/junk.ids"
  expect_error 2 "junk.ids" -- generate --model "$model" --prompt hi -n 4 --output "$tmp/junk.ids" \
    --resume

  # score writes its JSON; perplexity is finite and positive.
  printf 'The quick brown fox jumps over the lazy dog. It was a sunny day.\n' >"$tmp/t.txt"
  if "$ts" score --model "$model" --text-file "$tmp/t.txt" --threads 2 \
      --stats-json "$tmp/score.json" >/dev/null 2>"$tmp/err"; then ok; else bad "score: $(cat "$tmp/err")"; fi
  python3 -c "
import json,math,sys; s=json.load(open('$tmp/score.json'))
assert s['tokens']==len(s['token_logprobs'])>0 and math.isfinite(s['perplexity']) and s['perplexity']>1
assert abs(math.exp(-s['mean_logprob'])-s['perplexity'])<1e-6*s['perplexity']" && ok || bad "score JSON"
else
  echo "note: default model absent ($model); model-dependent CLI checks not run"
  bad "default model missing: run scripts/fetch-model.sh"
fi

# bench: bad flags are rejected before the model is opened; --mode both on a tiny test model
# (no tokenizer: --prompt-ids) with random heads (hidden flag --random-heads) and a static tree
# (every step speculates) writes JSON, Markdown and a well-formed SVG, and TokenSwift commits
# exactly AR's tokens.
expect_error 2 "--mode" -- bench --model "$tmp/trunc.gguf" --mode xyz
expect_error 2 "--interval" -- bench --model "$tmp/trunc.gguf" --mode ar --interval 0
expect_error 2 "--warmup" -- bench --model "$tmp/trunc.gguf" --mode ar --warmup -1
expect_error 2 "--tp 2" -- bench --model "$tmp/trunc.gguf" --mode ar --tp 2
expect_error 2 "--tree" -- bench --model "$tmp/trunc.gguf" --random-heads 1 --tree 1,0,3
expect_error 2 "--heads" -- bench --model "$tmp/trunc.gguf" --mode both
expect_error 2 "--top-p" -- bench --model "$tmp/trunc.gguf" --mode ar --top-p 0
expect_error 2 "--drafting" -- bench --model "$tmp/trunc.gguf" --random-heads 1 --drafting xyz
expect_error 2 "--max-draft-nodes" -- bench --model "$tmp/trunc.gguf" --random-heads 1 --max-draft-nodes 0
expect_error 2 "--draft-nodes" -- bench --model "$tmp/trunc.gguf" --random-heads 1 --draft-nodes 99
expect_error 2 "--draft-kv-budget" -- bench --model "$tmp/trunc.gguf" --random-heads 1 --draft-kv-budget 8
expect_error 2 "--rows" -- bench --model "$tmp/trunc.gguf" --mode verify --rows 1,4,2
expect_error 2 "--rows" -- bench --model "$tmp/trunc.gguf" --mode verify --rows 0,2
expect_error 2 "--rows" -- bench --model "$tmp/trunc.gguf" --mode verify --rows 1,x
expect_error 2 "--reps" -- bench --model "$tmp/trunc.gguf" --mode verify --reps 0
expect_error 2 "--tp" -- bench --model "$tmp/trunc.gguf" --mode verify --tp 2
expect_error 2 "--draft-vocab" -- train-heads --model "$tmp/trunc.gguf" -o "$tmp/h.st" --draft-vocab -1
expect_error 2 "--soft-targets" -- train-heads --model "$tmp/trunc.gguf" -o "$tmp/h.st" --soft-targets 2
expect_error 2 "--token-mlp" -- train-heads --model "$tmp/trunc.gguf" -o "$tmp/h.st" --token-mlp 8
expect_error 2 "--data" -- train-heads --model "$tmp/trunc.gguf" -o "$tmp/h.st" --data "$tmp/none.txt"
# A job whose KV cache cannot fit fails before prefill, naming the flags to change.
smol="${TS_CACHE_DIR:-$HOME/.cache/tokenswift}/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$smol" ]; then
  expect_error 2 "--max-new-tokens" -- generate --model "$smol" --prompt hi -n 400000000 \
    --ctx-size 400000100
fi
if "$ts" make-test-model --preset llama-gqa-3kv --out "$tmp/tiny" >/dev/null 2>"$tmp/err"; then
  printf '1 17 33 5 9 120 77 3 64 200 31 8 1 17 33 5\n' >"$tmp/ids.txt"
  expect_error 2 "--prompt-ids" -- bench --model "$tmp/tiny" --mode ar --prompt-ids "$tmp/emptydir"
  if "$ts" bench --model "$tmp/tiny" --mode both --random-heads 7 --prompt-ids "$tmp/ids.txt" \
      --prompt-tokens 24 --gen-tokens 90 --interval 32 --temperature 1 --min-p 0.1 --penalty 1.2 \
      --penalty-window 64 --seed 5 --tree 1,3,3,3 --threads 2 --out-dir "$tmp/bench" \
      >"$tmp/out" 2>"$tmp/err"; then
    ok
  else
    bad "bench --mode both on a tiny model failed: $(cat "$tmp/err")"
  fi
  grep -q "lossless: true" "$tmp/out" && ok || bad "bench summary lacks 'lossless: true': $(cat "$tmp/out")"
  if python3 - "$tmp/bench" <<'PY'; then ok; else bad "bench JSON / Markdown / SVG"; fi
import json, sys, xml.dom.minidom
d = sys.argv[1]
j = json.load(open(d + "/bench.json"))
assert j["lossless"] is True and j["first_mismatch"] == -1, j["lossless"]
assert j["speedup"] > 0 and j["interval"] == 32 and j["prompt_tokens"] == 24, j
assert j["warmup_tokens"] == 32, j
assert j["sampling"]["seed"] == 5 and j["sampling"]["penalty_window"] == 64, j["sampling"]
assert j["peak_rss_method"], j
need = ["prompt_tokens", "generated_tokens", "prefill_seconds", "prefill_tokens_per_second",
        "seconds", "tokens_per_second", "steps", "mean_accepted_per_step", "acceptance_rate",
        "ngram_accepted_share", "distinct_1", "distinct_2", "distinct_3", "distinct_4",
        "peak_rss_bytes", "intervals", "generated_ids"]
for mode in ("ar", "tokenswift"):
    m = j["modes"][mode]
    missing = [k for k in need if k not in m]
    assert not missing, (mode, missing)
    assert m["generated_tokens"] == 90 and len(m["generated_ids"]) == 90, mode
    assert m["tokens_per_second"] > 0 and m["peak_rss_bytes"] > 0, m
    assert [(i["begin"], i["end"]) for i in m["intervals"]] == [(0, 32), (32, 64), (64, 90)]
    assert all(i["tokens_per_second"] > 0 for i in m["intervals"]), m["intervals"]
    assert 0 < m["distinct_1"] <= 1, m
ar, tsw = j["modes"]["ar"], j["modes"]["tokenswift"]
assert ar["generated_ids"] == tsw["generated_ids"]
assert ar["steps"] == 90 and ar["mean_accepted_per_step"] == 1 and ar["acceptance_rate"] == 0
assert tsw["steps"] <= 90 and tsw["mean_accepted_per_step"] >= 1 and tsw["drafted"] > 0, tsw
assert j["tokenswift"]["tree"] == [1, 3, 3, 3], j["tokenswift"]
assert abs(j["speedup"] - tsw["tokens_per_second"] / ar["tokens_per_second"]) < 1e-9
md = open(d + "/bench.md").read()
assert "| AR |" in md and "| TokenSwift |" in md and "lossless" in md and "| 64-90 |" in md, md
svg = xml.dom.minidom.parse(d + "/bench.svg")
assert len(svg.getElementsByTagName("polyline")) == 2
PY
  # bench --mode verify: the verify-pass cost by rows, past the tiny model's trained context.
  if "$ts" bench --model "$tmp/tiny" --mode verify --prompt-ids "$tmp/ids.txt" \
      --prompt-tokens 300 --rows 1,2,5,16 --reps 3 --threads 2 --out-dir "$tmp/vbench" \
      >"$tmp/out" 2>"$tmp/err"; then
    ok
  else
    bad "bench --mode verify on a tiny model failed: $(cat "$tmp/err")"
  fi
  if python3 - "$tmp/vbench" <<'PY'; then ok; else bad "verify bench JSON / Markdown / SVG"; fi
import json, sys, xml.dom.minidom
d = sys.argv[1]
j = json.load(open(d + "/bench.json"))
assert j["mode"] == "verify" and j["context_tokens"] == 300, j
ms = j["verify_ms_by_rows"]
assert sorted(ms, key=int) == ["1", "2", "5", "16"], ms
assert all(v > 0 for v in ms.values()), ms
assert all(len(j["samples_ms_by_rows"][k]) == 3 for k in ms), j["samples_ms_by_rows"]
for k, v in ms.items():
    s = sorted(j["samples_ms_by_rows"][k])
    assert v == s[1], (k, v, s)  # the median of three
assert abs(j["ratio_to_fewest_rows"]["16"] - ms["16"] / ms["1"]) < 1e-9
assert j["prefill_tokens_per_second"] > 0 and j["kv_dtype"] == "bf16", j  # the default
md = open(d + "/bench.md").read()
assert "| 16 |" in md and "300 tokens of context" in md, md
svg = xml.dom.minidom.parse(d + "/bench.svg")
assert len(svg.getElementsByTagName("polyline")) == 1
PY
else
  bad "make-test-model for bench failed: $(cat "$tmp/err")"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
