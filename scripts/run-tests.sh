#!/usr/bin/env bash
# The whole test suite: installs, builds, fetches the default model, checks formatting, runs the
# unit and integration tests (ctest) and each fuzzer for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
export TS_MODEL_PATH=$(bash scripts/fetch-model.sh)
bash scripts/check-format.sh
if [ -x tests/fuzz/run_fuzzers.sh ] || [ -f tests/fuzz/run_fuzzers.sh ]; then
  bash tests/fuzz/run_fuzzers.sh
fi
cd build && ctest --output-on-failure -j "$(nproc)"
