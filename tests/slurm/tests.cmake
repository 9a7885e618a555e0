# Slurm for real: a single-node cluster (cluster/slurm/local-cluster.sh) running
# cluster/slurm/generate.sbatch with 2 tensor-parallel ranks, a requeue and a time-limit signal.
if(TS_MPI)
  add_test(NAME slurm.sbatch_tp2_and_requeue
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/slurm_test.sh $<TARGET_FILE:tokenswift>)
  set_tests_properties(slurm.sbatch_tp2_and_requeue PROPERTIES LABELS slurm TIMEOUT 900
                       RUN_SERIAL TRUE)
endif()
