#!/usr/bin/env bash
# Runs ts_mpi_check under mpirun: 2 and 3 ranks pass every check; a rank that stops (SIGSTOP) or
# exits mid-run ends the job on every rank, non-zero, within the bound, naming the rank.
# Then ts_tp_check: tensor-parallel logits on 2 and 3 ranks against the whole model (a tiny test
# model, and the default model when TS_MODEL_PATH or the cache has it).
# Then `tokenswift generate --tp N` under mpirun: greedy text, determinism, the same tokens at TP
# 1, 2 and 3 (AR and TokenSwift, greedy and sampled), and a rank killed
# (SIGKILL) or stopped (SIGSTOP) mid-generation ending the whole job within the bound.
# Usage: mpi_test.sh PATH_TO_ts_mpi_check PATH_TO_ts_tp_check [PATH_TO_tokenswift]
set -uo pipefail
check="$1"
tp_check="$2"
ts="${3:-}"
model="${TS_MODEL_PATH:-${TS_CACHE_DIR:-$HOME/.cache/tokenswift}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
source "$(dirname "$0")/mpirun_env.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

for np in 2 3; do
  if timeout 120 "${MPIRUN[@]}" -np "$np" "$check" >"$tmp/out" 2>"$tmp/err"; then
    n=$(grep -c "all checks passed" "$tmp/out")
    [ "$n" -eq "$np" ] && ok || bad "np $np: $n of $np ranks passed: $(cat "$tmp/out" "$tmp/err")"
  else
    bad "np $np failed: $(cat "$tmp/out" "$tmp/err" | head -20)"
  fi
done

# expect_failure NAME BOUND NEEDLE -- ARGS: non-zero exit within BOUND seconds, NEEDLE in output.
expect_failure() {
  local name="$1" bound="$2" needle="$3"
  shift 4
  local t0 t1 rc
  t0=$(date +%s)
  timeout 120 "${MPIRUN[@]}" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  t1=$(date +%s)
  if [ "$rc" -eq 0 ]; then
    bad "$name: exit 0, expected a failure"
  elif [ "$rc" -eq 124 ]; then
    bad "$name: hung (killed by timeout after 120 s)"
  elif [ $((t1 - t0)) -gt "$bound" ]; then
    bad "$name: took $((t1 - t0)) s, bound $bound s"
  elif ! grep -qE -- "$needle" "$tmp/out" "$tmp/err"; then
    bad "$name: output lacks '$needle': $(cat "$tmp/out" "$tmp/err" | head -20)"
  else
    ok
  fi
}
# A stopped rank: the others' watchdog (3 s here) pings, names it and aborts the job.
expect_failure "stall" 30 "rank 1 does not answer" -- -np 2 "$check" --stall 1 --timeout 3
expect_failure "stall-3" 30 "rank 2 does not answer" -- -np 3 "$check" --stall 2 --timeout 3
# An exited rank: mpirun ends the job and names it.
# Open MPI names the process [[job,1],RANK].
expect_failure "exit" 30 "Process name: \[\[[0-9]*,[0-9]*\],1\]" -- -np 2 "$check" --exit 1 --timeout 3
expect_failure "exit-3" 30 "Process name: \[\[[0-9]*,[0-9]*\],2\]" -- -np 3 "$check" --exit 2 --timeout 3

model_args=()
if [ -f "$model" ]; then
  model_args=(--model "$model")
else
  bad "default model missing ($model): run scripts/fetch-model.sh"
fi
for np in 2 3; do
  if timeout 300 "${MPIRUN[@]}" -np "$np" "$tp_check" "${model_args[@]}" >"$tmp/out" 2>"$tmp/err"; then
    n=$(grep -c " ok," "$tmp/out")
    want=$((np * (10 + 2 * ${#model_args[@]} / 2)))  # per rank: 10 tiny-model checks, 2 SmolLM2
    [ "$n" -eq "$want" ] && ok || bad "tp np $np: $n of $want checks ok: $(cat "$tmp/out")"
    grep -E "rank 0/" "$tmp/out"
  else
    bad "tp np $np failed: $(cat "$tmp/out" "$tmp/err" | head -20)"
  fi
done

# rank_pid RANK: the pid of the tokenswift process of that MPI rank (from its environment).
rank_pid() {
  local p
  for p in $(pgrep -f "tokenswift generate"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$p"
      return
    fi
  done
}

# kill_midway NAME SIGNAL NEEDLE: a 2-rank generation whose rank 1 gets SIGNAL after 20 tokens
# must end (non-zero) within 30 s with NEEDLE in its output.
kill_midway() {
  local name="$1" sig="$2" needle="$3"
  rm -f "$tmp/mid.ids"
  "${MPIRUN[@]}" -np 2 "$ts" generate --model "$model" --tp 2 --comm-timeout 3 -q --ignore-eos \
    -p "Write a long story." -n 3000 -t 1 -o "$tmp/mid.ids" >"$tmp/out" 2>"$tmp/err" &
  local job=$!
  for _ in $(seq 600); do
    [ -f "$tmp/mid.ids" ] && [ "$(wc -l <"$tmp/mid.ids")" -ge 20 ] && break
    sleep 0.05
  done
  local victim t0 t1
  victim=$(rank_pid 1)
  t0=$(date +%s)
  [ -n "$victim" ] && kill "-$sig" "$victim"
  for _ in $(seq 600); do
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  t1=$(date +%s)
  if kill -0 "$job" 2>/dev/null; then
    bad "$name: job still running $((t1 - t0)) s after SIG$sig to rank 1"
    kill -9 "$job" 2>/dev/null
    [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null
  elif wait "$job"; then
    bad "$name: exit 0 after SIG$sig to rank 1"
  elif [ $((t1 - t0)) -gt 30 ]; then
    bad "$name: took $((t1 - t0)) s"
  elif ! grep -qE -- "$needle" "$tmp/out" "$tmp/err"; then
    bad "$name: output lacks '$needle': $(head -c 600 "$tmp/err")"
  else
    ok
  fi
}

if [ -n "$ts" ] && [ -f "$model" ]; then
  gen=(generate --model "$model" --tp 2 -t 1 -q --ignore-eos)
  if "${MPIRUN[@]}" -np 2 "$ts" generate --model "$model" --tp 2 -t 1 \
      -p "The capital of France is" -n 12 --temperature 0 >"$tmp/out" 2>"$tmp/err"; then
    grep -q "Paris" "$tmp/out" && ok || bad "tp 2 greedy text lacks Paris: $(cat "$tmp/out")"
  else
    bad "tp 2 generate failed: $(cat "$tmp/err" | head -20)"
  fi
  for run in a b; do
    "${MPIRUN[@]}" -np 2 "$ts" "${gen[@]}" -p "Tell me about owls." -n 64 --seed 4 \
      -o "$tmp/det_$run.ids" >/dev/null 2>"$tmp/err" || bad "tp 2 sampled run $run failed"
  done
  cmp -s "$tmp/det_a.ids" "$tmp/det_b.ids" && [ "$(wc -l <"$tmp/det_a.ids")" -eq 64 ] && ok \
    || bad "tp 2 sampled runs differ or are short"
  # The same tokens at TP = 1, 2 and 3 (reduction granules, parallel/shard_plan.h), and TokenSwift
  # under TP=N emits that AR stream, greedy and sampled, 1,000 tokens.
  heads="$(dirname "$0")/../../models/heads/smollm2-135m-instruct-heads.safetensors"
  for np in 1 2 3; do
    launch=("${MPIRUN[@]}" -np "$np")
    [ "$np" -eq 1 ] && launch=()
    for s in 0 1; do
      sampling="--temperature 0"
      [ "$s" -eq 1 ] && sampling="--temperature 1 --min-p 0.1 --penalty 1.2 --seed 11"
      for mode in ar tokenswift; do
        # shellcheck disable=SC2086
        "${launch[@]}" "$ts" generate --model "$model" --tp "$np" -t 1 -q --ignore-eos \
          -p "Write a story about a dragon." -n 1000 $sampling --mode "$mode" --heads "$heads" \
          -o "$tmp/tp${np}_s${s}_$mode.ids" --stats-json "$tmp/tp_$mode.json" >/dev/null \
          2>"$tmp/err" || bad "tp $np $mode ($sampling) failed: $(head -c 400 "$tmp/err")"
      done
      if cmp -s "$tmp/tp${np}_s${s}_ar.ids" "$tmp/tp${np}_s${s}_tokenswift.ids" \
          && [ "$(wc -l <"$tmp/tp${np}_s${s}_ar.ids")" -eq 1000 ]; then
        ok
      else
        bad "tp $np ($sampling): TokenSwift ids differ from AR's"
      fi
      if [ "$np" -gt 1 ]; then
        cmp -s "$tmp/tp1_s${s}_ar.ids" "$tmp/tp${np}_s${s}_ar.ids" && ok \
          || bad "tp $np ($sampling): ids differ from TP 1's: $(cmp "$tmp/tp1_s${s}_ar.ids" \
               "$tmp/tp${np}_s${s}_ar.ids")"
      fi
      python3 -c "
import json
for m in ('ar', 'tokenswift'):
    s = json.load(open('$tmp/tp_' + m + '.json'))
    sent = s.get('comm_bytes_sent_rank0', 0) / s['steps']
    print(f'tp $np {m} ($sampling): {s[\"tokens_per_second\"]:.1f} tok/s, '
          f'{s[\"mean_accepted_per_step\"]:.2f} tokens/step, {sent:.0f} bytes sent per step by rank 0')"
    done
  done
  # The filters that need sums and selections over the split vocabulary (top-p, top-k, eta).
  filters="--temperature 1 --top-p 0.9 --top-k 50 --eta 0.0009 --min-p 0 --penalty 1.2 --seed 5"
  for mode in ar tokenswift; do
    # shellcheck disable=SC2086
    "${MPIRUN[@]}" -np 2 "$ts" generate --model "$model" --tp 2 -t 1 -q --ignore-eos \
      -p "Write a story about a dragon." -n 200 $filters --mode "$mode" --heads "$heads" \
      -o "$tmp/tpf_$mode.ids" >/dev/null 2>"$tmp/err" \
      || bad "tp 2 $mode ($filters) failed: $(head -c 400 "$tmp/err")"
  done
  cmp -s "$tmp/tpf_ar.ids" "$tmp/tpf_tokenswift.ids" && [ "$(wc -l <"$tmp/tpf_ar.ids")" -eq 200 ] \
    && ok || bad "tp 2 ($filters): TokenSwift ids differ from AR's"
  # shellcheck disable=SC2086
  "$ts" generate --model "$model" -t 1 -q --ignore-eos -p "Write a story about a dragon." -n 200 \
    $filters -o "$tmp/tpf_single.ids" >/dev/null 2>"$tmp/err" || bad "tp 1 ($filters) failed"
  cmp -s "$tmp/tpf_single.ids" "$tmp/tpf_ar.ids" && ok \
    || bad "tp 2 ($filters): ids differ from TP 1's"
  # Top-p alone: the ranks exchange their best tokens in rounds until the mass is reached
  # (runtime/sampling/sharded_sampler.h); a flat distribution (temperature 3) takes many rounds.
  topp="--temperature 3 --top-p 0.95 --min-p 0 --penalty 1.2 --seed 8"
  for np in 1 2 3; do
    launch=("${MPIRUN[@]}" -np "$np")
    [ "$np" -eq 1 ] && launch=()
    # shellcheck disable=SC2086
    "${launch[@]}" "$ts" generate --model "$model" --tp "$np" -t 1 -q --ignore-eos \
      -p "Write a story about a dragon." -n 200 $topp -o "$tmp/topp_$np.ids" >/dev/null \
      2>"$tmp/err" || bad "tp $np ($topp) failed: $(head -c 400 "$tmp/err")"
  done
  for np in 2 3; do
    cmp -s "$tmp/topp_1.ids" "$tmp/topp_$np.ids" && [ "$(wc -l <"$tmp/topp_1.ids")" -eq 200 ] \
      && ok || bad "tp $np ($topp): ids differ from TP 1's"
  done
  # Rank 0 checks a --resume against the job's sidecar and every rank leaves with its verdict: one
  # line from rank 0 naming the flag, exit 2, no rank left waiting.
  "${MPIRUN[@]}" -np 2 "$ts" generate --model "$model" --tp 2 -t 1 -q --ignore-eos \
    -p "Write a story about a dragon." -n 1100 --temperature 1 --min-p 0.1 --penalty 1.2 \
    --seed 12 -o "$tmp/tp1_s1_ar.ids" --resume >/dev/null 2>"$tmp/err"
  rc=$?
  if [ "$rc" -eq 2 ] && grep -q -- "--seed 11, this run has --seed 12" "$tmp/err" \
      && grep -q "rank 1.*rank 0 rejected the job" "$tmp/err"; then
    ok
  else
    bad "tp 2 mismatched --resume: exit $rc, $(head -c 600 "$tmp/err")"
  fi
  # bench --tp 2: both modes, lossless, rank 0 writes the report.
  if "${MPIRUN[@]}" -np 2 "$ts" bench --model "$model" --tp 2 -t 1 --heads "$heads" \
      --prompt-tokens 64 --gen-tokens 96 --interval 32 --out-dir "$tmp/bench" >"$tmp/out" 2>"$tmp/err"; then
    grep -q "lossless: true" "$tmp/out" && python3 -c "
import json; j = json.load(open('$tmp/bench/bench.json')); assert j['tp'] == 2 and j['lossless']" \
      && ok || bad "bench --tp 2: $(cat "$tmp/out")"
  else
    bad "bench --tp 2 failed: $(head -c 400 "$tmp/err")"
  fi
  kill_midway "kill -9 rank 1" KILL "process rank 1 .*exited on signal 9"
  kill_midway "stop rank 1" STOP "rank 1 does not answer"
fi

echo "mpi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
