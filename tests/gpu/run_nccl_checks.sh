#!/usr/bin/env bash
# The NCCL communicator on a GPU machine: builds the main project with CUDA and MPI (target
# ts_nccl_check) and runs it under mpirun, one rank per GPU. Last line: "N passed, M failed".
# NCCL needs distinct GPUs per rank, so a one-GPU machine checks the single-rank path only.
# Usage: tests/gpu/run_nccl_checks.sh [build-dir]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-${root}/build-nccl-checks}"
export PATH="/usr/local/cuda/bin:${PATH}"
gpus=$(nvidia-smi --list-gpus 2>/dev/null | wc -l)
[ "${gpus}" -ge 1 ] || { echo "run_nccl_checks: no GPU"; echo "0 passed, 1 failed"; exit 1; }
cmake -S "${root}" -B "${build}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" \
  >"${build}.configure.log" 2>&1 || { tail -30 "${build}.configure.log"; exit 1; }
cmake --build "${build}" --target ts_nccl_check -j "$(nproc)" >"${build}.build.log" 2>&1 \
  || { tail -30 "${build}.build.log"; exit 1; }
source "${root}/tests/parallel/mpirun_env.sh"
out=$(timeout 300 "${MPIRUN[@]}" -np "${gpus}" "${build}/tests/gpu/ts_nccl_check" 2>&1)
echo "${out}"
passed=$(grep -c "nccl checks passed" <<<"${out}")
echo "${passed} passed, $((gpus - passed)) failed"
[ "${passed}" -eq "${gpus}" ]
