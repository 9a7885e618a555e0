# Sourced by the mpirun tests: an mpirun command line that works in CI containers.
#  - --oversubscribe: 3 ranks on 2 cores; --bind-to none: oversubscribed ranks must not share one.
#  - root in containers: Open MPI refuses root unless told.
#  - no CMA single-copy (needs ptrace rights containers often lack); loopback TCP only.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_btl_tcp_if_include=lo
export OMPI_MCA_oob_tcp_if_include=lo
MPIRUN=(mpirun --oversubscribe --bind-to none)
if [ "$(id -u)" = 0 ]; then
  MPIRUN+=(--allow-run-as-root)
fi
