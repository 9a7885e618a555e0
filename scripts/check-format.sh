#!/usr/bin/env bash
# Fails when a C++ source differs from .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cc' '*.h' '*.cu' '*.cuh')
[ -z "$files" ] && exit 0
bad=$(clang-format --dry-run $files 2>&1 | grep -oE '^[^:]+:[0-9]+:[0-9]+: (warning|error)' | cut -d: -f1 | sort -u || true)
if [ -n "$bad" ]; then
  echo "clang-format: these files need formatting (clang-format -i FILE):"; echo "$bad"; exit 1
fi
echo "clang-format: ok"
