#!/usr/bin/env bash
# The main job on the default model: installs, builds, fetches SmolLM2-135M and streams a long
# generation with a summary line (and stats in out/demo-stats.json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
model=$(bash scripts/fetch-model.sh)
mkdir -p out
./build/launch/tokenswift generate --model "$model" --chat \
  --prompt "Write a long, detailed story about a lighthouse keeper who finds a mysterious map." \
  --max-new-tokens "${TS_DEMO_TOKENS:-2048}" --temperature 0.7 --min-p 0.1 --penalty 1.2 \
  --seed 42 --threads "$(nproc)" --stats-json out/demo-stats.json "$@"
