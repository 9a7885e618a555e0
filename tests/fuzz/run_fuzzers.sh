#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (TS_FUZZ=ON) and runs each for a bounded time from a
# small generated seed corpus. Exits non-zero when a target crashes (the reproducer is left in
# $BUILD/fuzz-artifacts/).
#
# usage: tests/fuzz/run_fuzzers.sh [SECONDS_PER_TARGET]   (default 30)
#   env: TS_FUZZ_BUILD_DIR (default build-fuzz), JOBS (default 2)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${TS_FUZZ_BUILD_DIR:-${root}/build-fuzz}"
seconds="${1:-30}"
targets=(fuzz_gguf fuzz_safetensors fuzz_hf_config fuzz_tokenizer_json)

cmake -S "${root}" -B "${build}" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=Release -DTS_FUZZ=ON -DTS_TESTS=ON -DTS_CUDA=OFF -DTS_MPI=OFF \
  -DTS_GRPC=OFF >/dev/null
cmake --build "${build}" --target "${targets[@]}" -j"${JOBS:-2}"

seeds="${build}/fuzz-seeds"
python3 "${root}/tests/fuzz/make_seeds.py" "${seeds}"
mkdir -p "${build}/fuzz-artifacts" "${seeds}/tokenizer_json"
cp "${root}"/tests/fixtures/tokenizer/qwen2_nfc_tokenizer.json "${seeds}/tokenizer_json/"

status=0
for target in "${targets[@]}"; do
  name="${target#fuzz_}"
  corpus="${build}/fuzz-corpus/${name}"
  mkdir -p "${corpus}" "${seeds}/${name}"
  echo "== ${target}: ${seconds}s"
  if ! "${build}/tests/fuzz/${target}" -max_total_time="${seconds}" -max_len=65536 \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="${build}/fuzz-artifacts/${name}-" \
      "${corpus}" "${seeds}/${name}" 2>"${build}/fuzz-${name}.log"; then
    echo "!! ${target} failed; see ${build}/fuzz-${name}.log and ${build}/fuzz-artifacts/"
    tail -n 40 "${build}/fuzz-${name}.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "${build}/fuzz-${name}.log" || true
  fi
done
exit "${status}"
