#!/usr/bin/env bash
# Installs the build and test dependencies from Debian packages (run as root on a fresh machine).
# Skips apt when everything is already present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git python3 python3-pip unzip
      libabsl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev libhwy-dev libpcre2-dev libicu-dev libssl-dev
      libgtest-dev libgmock-dev libopenmpi-dev openmpi-bin clang-format clang libclang-rt-14-dev
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libsqlite3-dev
      slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Python packages the fuzz seed writer and fixture scripts use (small; nothing at run time).
python3 -c "import gguf" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check gguf
# The Python gRPC example (examples/python/client.py) and the health/reflection clients of
# tests/serve.
python3 -c "import grpc, grpc_tools, grpc_health, grpc_reflection" 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check grpcio grpcio-tools \
    grpcio-health-checking grpcio-reflection
