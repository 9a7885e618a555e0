#!/usr/bin/env bash
# ts_gpu_check on a machine without a GPU: exit 3 and exactly one line naming the missing GPU
# (what CI machines see). On a GPU machine this test is skipped (77): tests/gpu/run.sh checks it.
set -uo pipefail
bin="$1"
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  echo "a GPU is present: tests/gpu/run.sh is the check there"
  exit 77
fi
out=$("$bin" --out /dev/null 2>&1)
rc=$?
echo "exit ${rc}: ${out}"
[ "${rc}" -eq 3 ] || { echo "FAIL: expected exit 3"; exit 1; }
[ "$(printf '%s\n' "${out}" | wc -l)" -eq 1 ] || { echo "FAIL: expected one line"; exit 1; }
printf '%s' "${out}" | grep -q '^ts_gpu_check: no GPU found' || { echo "FAIL: wrong message"; exit 1; }
echo "PASS"
