#!/usr/bin/env bash
# Configures, builds and runs the CUDA backend checks on a GPU machine; the last line is
# "N passed, M failed". Builds tests/gpu as its own small CMake project (only the CUDA backend
# and the check program), so it needs the CUDA toolkit, abseil and CMake, nothing else.
# Usage: tests/gpu/run_gpu_checks.sh [build-dir] [device]   (about 1-2 minutes on an H200)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-${root}/build-gpu-checks}"
device="${2:-0}"
export PATH="/usr/local/cuda/bin:${PATH}"

fail() { echo "run_gpu_checks: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

mkdir -p "${build}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
cmake -S "${root}/tests/gpu" -B "${build}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" >"${build}/configure.log" 2>&1 \
  || { cat "${build}/configure.log"; fail "configure failed"; }
cmake --build "${build}" --target ts_cuda_ops_check -j "$(nproc)" >"${build}/build.log" 2>&1 \
  || { tail -50 "${build}/build.log"; fail "build failed"; }
timeout 240 "${build}/ts_cuda_ops_check" "${device}"
rc=$?
[ ${rc} -eq 124 ] && fail "timed out after 240 s"
exit ${rc}
