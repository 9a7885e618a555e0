#!/usr/bin/env bash
# Runs ts_mpi_check under mpirun: 2 and 3 ranks pass every check; a rank that stops (SIGSTOP) or
# exits mid-run ends the job on every rank, non-zero, within the bound, naming the rank.
# Then ts_tp_check: tensor-parallel logits on 2 and 3 ranks against the whole model (a tiny test
# model, and the default model when TS_MODEL_PATH or the cache has it).
# Usage: mpi_test.sh PATH_TO_ts_mpi_check PATH_TO_ts_tp_check
set -uo pipefail
check="$1"
tp_check="$2"
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
    want=$((np * (1 + 2 * ${#model_args[@]} / 2)))
    [ "$n" -eq "$want" ] && ok || bad "tp np $np: $n of $want checks ok: $(cat "$tmp/out")"
    grep -E "rank 0/" "$tmp/out"
  else
    bad "tp np $np failed: $(cat "$tmp/out" "$tmp/err" | head -20)"
  fi
done

echo "mpi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
