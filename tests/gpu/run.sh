#!/usr/bin/env bash
# The prepared device check of the CUDA backend (issue: GPU end to end). On a GPU machine, in at
# most ~8 minutes: prints the GPU and toolkit, runs the op checks (ts_cuda_ops_check: every op
# against a CPU reference), then ts_gpu_check (read bandwidth; a 64-node tree verify equal bit
# for bit to AR of each path on a 2-layer Llama-8B-shaped model; AR and verify steps of the
# 32-layer shape at 4K/32K/100K context next to their bandwidth bound), writing JSON as it goes.
# Without a GPU it builds everything and exits 3 with one line saying so.
#
# A GPU machine with nvcc, CMake and a driver but no package registry cannot build the runtime
# (abseil, spdlog, Highway ... are Debian packages here), so the binaries travel:
#   here:   bash tests/gpu/run.sh --bundle .gpu-bundle   (builds, copies the binaries and the
#           shared libraries they need that are not CUDA's or the C library's; .gpu-bundle is
#           git-ignored)
#   there:  bash tests/gpu/run.sh [OUT_DIR]               (uses .gpu-bundle when present)
# Exit: 0 all passed, 1 a check failed, 3 no GPU.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${root}"
export PATH="/usr/local/cuda/bin:${PATH}"
bundle="${TS_GPU_BUNDLE:-${root}/.gpu-bundle}"

build_checks() {
  if [ ! -f build/CMakeCache.txt ]; then
    bash scripts/build.sh >/dev/null || { echo "run.sh: build failed (scripts/build.sh)"; exit 1; }
  fi
  cmake --build build --target ts_cuda_ops_check ts_gpu_check -j "$(nproc)" >/tmp/ts_gpu_build.log 2>&1 \
    || { tail -30 /tmp/ts_gpu_build.log; echo "run.sh: build failed"; exit 1; }
}

if [ "${1:-}" = "--bundle" ]; then
  dest="${2:?usage: run.sh --bundle DIR}"
  build_checks
  rm -rf "${dest}" && mkdir -p "${dest}/lib"
  cp build/tests/gpu/ts_cuda_ops_check build/tests/gpu/ts_gpu_check "${dest}/"
  # Shared libraries beyond the C/C++ runtime and CUDA's own (the GPU machine's toolkit has those).
  ldd build/tests/gpu/ts_gpu_check build/tests/gpu/ts_cuda_ops_check | awk '/=> \// {print $3}' |
    sort -u | grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnvidia[^/]*)\.so' |
    while read -r lib; do cp -L "${lib}" "${dest}/lib/"; done
  du -sh "${dest}"
  echo "run.sh: bundle in ${dest} (carry it to the GPU machine; run.sh uses it there)"
  exit 0
fi

out_dir="${1:-${OUT:-${root}/gpu-check-out}}"
mkdir -p "${out_dir}"
if [ -x "${bundle}/ts_gpu_check" ]; then
  bin="${bundle}"
  export LD_LIBRARY_PATH="${bundle}/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
else
  build_checks
  bin="build/tests/gpu"
fi

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "run.sh: no GPU found (nvidia-smi lists none); everything is built, nothing ran"
  exit 3
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
command -v nvcc >/dev/null && nvcc --version | tail -1

failed=0
echo "== op checks (ts_cuda_ops_check)"
timeout 300 "${bin}/ts_cuda_ops_check" 0 2>&1 | tee "${out_dir}/ops_check.log"
rc=${PIPESTATUS[0]}
[ "${rc}" -eq 0 ] || { echo "run.sh: op checks failed (exit ${rc})"; failed=1; }
echo "== exactness and speed (ts_gpu_check)"
timeout 300 "${bin}/ts_gpu_check" --out "${out_dir}/gpu_check.json" 2>&1 | tee "${out_dir}/gpu_check.log"
rc=${PIPESTATUS[0]}
[ "${rc}" -eq 0 ] || { echo "run.sh: ts_gpu_check failed (exit ${rc})"; failed=1; }
echo "run.sh: $([ ${failed} -eq 0 ] && echo 'all passed' || echo 'FAILED'); reports in ${out_dir}"
exit ${failed}
