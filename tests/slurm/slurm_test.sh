#!/usr/bin/env bash
# Issue 12's Slurm done-when, on a real single-node Slurm started here (needs root and Debian's
# slurmctld, slurmd, slurm-client, munge: scripts/install-deps.sh installs them):
#  1. a 2-rank tensor-parallel TokenSwift job through `sbatch` gives the tokens of
#     `mpirun -np 2 ... --tp 2`;
#  2. `scontrol requeue` of a running job: it resumes from its ids and ends with the tokens of an
#     uninterrupted run;
#  3. the time-limit path: USR1 to the batch shell (what --signal=B:USR1@120 sends) requeues the
#     job itself, with the same final tokens.
# Usage: slurm_test.sh PATH_TO_TOKENSWIFT
set -uo pipefail
ts="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${TS_CACHE_DIR:-$HOME/.cache/tokenswift}"
model="${TS_MODEL_PATH:-$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
heads="$root/models/heads/smollm2-135m-instruct-heads.safetensors"
tmp=$(mktemp -d)
export TS_SLURM_DIR="$tmp/slurm"
cleanup() {
  bash "$root/cluster/slurm/local-cluster.sh" stop
  rm -rf "$tmp"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

if [ "$(id -u)" -ne 0 ]; then echo "FAIL: the Slurm test needs root (slurmd)"; exit 1; fi
eval "$(bash "$root/cluster/slurm/local-cluster.sh" start)" || { echo "FAIL: Slurm did not start"; exit 1; }
# shellcheck source=../parallel/mpirun_env.sh
source "$root/tests/parallel/mpirun_env.sh"
printf 'Write a story about a lighthouse keeper.' >"$tmp/prompt.txt"
export TS_MODEL="$model" TS_PROMPT_FILE="$tmp/prompt.txt" TS_BIN="$ts"
ts_args="--tp 2 -n 160 --mode tokenswift --heads $heads --temperature 0 --ignore-eos -t 1"
long_args="--tp 2 -n 400 --temperature 1 --min-p 0.1 --seed 3 --ignore-eos -t 1"
# shellcheck disable=SC2086
"${MPIRUN[@]}" -np 2 "$ts" generate --model "$model" --prompt-file "$tmp/prompt.txt" $ts_args -q \
  --output "$tmp/ref_ts.ids" 2>"$tmp/ref.log" || { echo "FAIL: mpirun reference"; cat "$tmp/ref.log"; exit 1; }
# shellcheck disable=SC2086
"${MPIRUN[@]}" -np 2 "$ts" generate --model "$model" --prompt-file "$tmp/prompt.txt" $long_args -q \
  --output "$tmp/ref_long.ids" 2>"$tmp/ref.log" || { echo "FAIL: mpirun reference"; cat "$tmp/ref.log"; exit 1; }

same_ids() {  # WHAT A B
  if [ -s "$2" ] && cmp -s "$2" "$3"; then ok; else
    bad "$1: $(wc -l <"$2") vs $(wc -l <"$3" 2>/dev/null || echo 0) ids differ"
  fi
}
count() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
wait_ids() {  # FILE N: until FILE has N lines (120 s at most)
  for _ in $(seq 1 1200); do [ "$(count "$1")" -ge "$2" ] && return 0; sleep 0.1; done
  return 1
}
wait_gone() {  # JOBID: until it left the queue (300 s at most)
  for _ in $(seq 1 3000); do [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0; sleep 0.1; done
  return 1
}

# 1. sbatch, 2 ranks, TP 2.
TS_OUTPUT="$tmp/sb_ts.ids" TS_ARGS="$ts_args" timeout 300 \
  sbatch --wait -n 2 --output="$tmp/sb_ts.log" "$root/cluster/slurm/generate.sbatch" >/dev/null
rc=$?
[ "$rc" -eq 0 ] && ok || { bad "sbatch --wait exited $rc"; cat "$tmp/sb_ts.log"; }
same_ids "sbatch TP2 tokenswift vs mpirun --tp 2" "$tmp/ref_ts.ids" "$tmp/sb_ts.ids"

# 2. scontrol requeue of a running job.
job=$(TS_OUTPUT="$tmp/rq.ids" TS_ARGS="$long_args" sbatch --parsable -n 2 \
  --output="$tmp/rq.log" "$root/cluster/slurm/generate.sbatch")
wait_ids "$tmp/rq.ids" 60 && ok || bad "requeue job never reached 60 ids"
scontrol requeue "$job" && ok || bad "scontrol requeue $job failed"
wait_gone "$job" && ok || bad "requeued job $job did not finish"
same_ids "requeued job vs uninterrupted" "$tmp/ref_long.ids" "$tmp/rq.ids"
grep -q "restart 1, 2 rank(s), [1-9][0-9]* ids" "$tmp/rq.log" && ok ||
  bad "the requeued run did not start from its ids: $(grep restart "$tmp/rq.log")"

# 3. The time-limit signal: USR1 to the batch shell requeues the job from inside.
job=$(TS_OUTPUT="$tmp/sig.ids" TS_ARGS="$long_args" sbatch --parsable -n 2 \
  --output="$tmp/sig.log" "$root/cluster/slurm/generate.sbatch")
wait_ids "$tmp/sig.ids" 60 && ok || bad "signal job never reached 60 ids"
scancel --batch --signal=USR1 "$job" && ok || bad "scancel --signal USR1 failed"
wait_gone "$job" && ok || bad "signalled job $job did not finish"
same_ids "USR1-requeued job vs uninterrupted" "$tmp/ref_long.ids" "$tmp/sig.ids"
grep -q "signal received" "$tmp/sig.log" && ok || bad "no 'signal received' line: $(tail -3 "$tmp/sig.log")"

echo "slurm: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
