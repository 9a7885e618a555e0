#!/usr/bin/env bash
# The 100K-token job on SmolLM2-135M (TokenSwift mode, sampled: temperature 1, min-p 0.1, penalty
# 1.2 over 1024, bf16 KV cache). Hours on 2 CPU cores, so it is resumable: run this again after a
# stop or a crash and it continues from the token ids already in $DIR/ids.txt (generate
# --resume: same tokens as one uninterrupted run). Each segment appends its stats JSON to
# $DIR/segments.jsonl and its log to $DIR/log.txt; $DIR/done is written at the end.
# A segment killed with the session writes no stats JSON; segments.txt keeps every segment's
# start and end (time and ids so far), so the total time covers killed segments too (their end
# is the last progress line of log.txt before the next start).
# Usage: bash scripts/run-100k.sh [tokenswift binary]
#        bash scripts/run-100k.sh --save-checkpoint    (copy the run's state to runs/100k/)
#   TS_RUN_DIR (default ${TS_CACHE_DIR:-~/.cache/tokenswift}/runs/100k), TS_100K_TOKENS (100000),
#   TS_THREADS (nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/launch/tokenswift}
CACHE=${TS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenswift}
DIR=${TS_RUN_DIR:-$CACHE/runs/100k}
N=${TS_100K_TOKENS:-100000}
MODEL=${TS_MODEL_PATH:-$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf}
mkdir -p "$DIR"
if [ "${1:-}" = "--save-checkpoint" ]; then
  # Only whole lines: a line being written when this runs is left for the next save.
  mkdir -p runs/100k
  n=$(grep -c '' "$DIR/ids.txt")
  head -n "$((n - 1))" "$DIR/ids.txt" >runs/100k/ids.txt
  cp "$DIR/ids.txt.job.json" runs/100k/
  for f in segments.txt segments.jsonl; do [ -f "$DIR/$f" ] && cp "$DIR/$f" runs/100k/; done
  grep -E "generated|calibration|prefilling|resume" "$DIR/log.txt" >runs/100k/progress.log || true
  echo "run-100k: saved $(wc -l <runs/100k/ids.txt) ids to runs/100k/"
  exit 0
fi
if [ -f "$DIR/done" ]; then
  echo "run-100k: $DIR/done exists: the job is finished"; cat "$DIR/done"; exit 0
fi
# A 2-core session is shorter than this job: a session that stops commits its ids to
# runs/100k/ (ids.txt, its job sidecar, segments.txt, the log's progress lines), and a fresh run
# directory starts from that checkpoint (--resume checks it was written for this very job).
CHECKPOINT=runs/100k
if [ ! -f "$DIR/ids.txt" ] && [ -f "$CHECKPOINT/ids.txt" ]; then
  cp "$CHECKPOINT/ids.txt" "$CHECKPOINT/ids.txt.job.json" "$DIR/"
  [ -f "$CHECKPOINT/segments.txt" ] && cp "$CHECKPOINT/segments.txt" "$DIR/"
  [ -f "$CHECKPOINT/segments.jsonl" ] && cp "$CHECKPOINT/segments.jsonl" "$DIR/"
  echo "run-100k: starting from the checkpoint in $CHECKPOINT ($(wc -l <"$DIR/ids.txt") ids)"
fi
# The prompt is at most a few hundred tokens; the context is sized for prompt + N.
CTX=$((N + 1024))
have=$( [ -f "$DIR/ids.txt" ] && wc -l <"$DIR/ids.txt" || echo 0)
echo "start $(date +%s) $(date -Is) ids=$have" >>"$DIR/segments.txt"
"$B" --log-level info generate --model "$MODEL" --chat \
  --prompt "Write a very long novel, chapter after chapter, about a family of lighthouse keepers across five generations. Describe every character, place and event in detail." \
  --mode tokenswift --heads models/heads/smollm2-135m-instruct-heads.safetensors \
  -n "$N" --ctx-size "$CTX" --kv-dtype bf16 --ignore-eos \
  --temperature 1 --min-p 0.1 --penalty 1.2 --penalty-window 1024 --seed 100 \
  --threads "${TS_THREADS:-$(nproc)}" -q \
  --output "$DIR/ids.txt" --resume --stats-json "$DIR/segment.json" 2>>"$DIR/log.txt"
if [ -f "$DIR/segment.json" ]; then
  tr -d '\n' <"$DIR/segment.json" >>"$DIR/segments.jsonl"
  echo >>"$DIR/segments.jsonl"
  rm "$DIR/segment.json"
fi
have=$(wc -l <"$DIR/ids.txt")
echo "end $(date +%s) $(date -Is) ids=$have" >>"$DIR/segments.txt"
if [ "$have" -ge "$N" ]; then
  python3 - "$DIR" <<'PY' | tee "$DIR/done"
import json, sys
d = sys.argv[1]
segs = [json.loads(l) for l in open(d + "/segments.jsonl") if l.strip()]
gen = sum(s["generated_tokens"] for s in segs)
dec = sum(s["seconds"] for s in segs)
pre = sum(s["prefill_seconds"] for s in segs)
rss = max(s["peak_rss_bytes"] for s in segs)
ids = sum(1 for _ in open(d + "/ids.txt"))
# Wall time per segment from segments.txt: a start without its end (killed) ends at the next start
# at the latest; log.txt's last progress line before it is the better estimate, read by hand.
events = [l.split() for l in open(d + "/segments.txt") if l.strip()]
wall, start = 0, None
for e in events:
    if e[0] == "start":
        start = int(e[1])
    elif e[0] == "end" and start is not None:
        wall += int(e[1]) - start
        start = None
killed = sum(1 for e in events if e[0] == "start") - sum(1 for e in events if e[0] == "end")
print(f"run-100k: {ids} tokens; {len(segs)} segment(s) with stats: {gen} tokens, decode {dec:.0f} s "
      f"({gen / dec:.1f} tok/s), prefill/re-prefill {pre:.0f} s, peak RSS {rss / 2**20:.0f} MiB; "
      f"wall time of ended segments {wall} s; {killed} segment(s) killed (see log.txt)")
PY
fi
