#!/usr/bin/env bash
# The main job on the default model: installs, builds, fetches SmolLM2-135M and streams a long
# TokenSwift generation with the committed draft heads and a summary line (mode, tokens/step,
# tok/s; stats in out/demo-stats.json, the planner's choices in the log), then measures the same
# settings against plain AR decoding (bench --mode both: speed ratio, identical tokens).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
model=$(bash scripts/fetch-model.sh)
mkdir -p out
heads=models/heads/smollm2-135m-instruct-heads.safetensors
./build/launch/tokenswift --log-level info generate --model "$model" --chat \
  --mode tokenswift --heads "$heads" \
  --prompt "Write a long, detailed story about a lighthouse keeper who finds a mysterious map." \
  --max-new-tokens "${TS_DEMO_TOKENS:-2048}" --temperature 0.7 --min-p 0.1 --penalty 1.2 \
  --seed 42 --threads "$(nproc)" --stats-json out/demo-stats.json "$@"
./build/launch/tokenswift bench --model "$model" --mode both --heads "$heads" \
  --prompt-tokens 512 --gen-tokens "${TS_DEMO_BENCH_TOKENS:-1024}" --temperature 0.7 --min-p 0.1 \
  --penalty 1.2 --seed 42 --threads "$(nproc)" --out-dir out/demo-bench
