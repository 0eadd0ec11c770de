#!/bin/bash
#BSUB -J hpcscale-summitdev-4g
#BSUB -nnodes 1
#BSUB -W 04:00
#BSUB -q batch
#BSUB -P CSC000
#BSUB -o /scratch/study/jobs/4g/submitit/%J_0_log.out
#BSUB -e /scratch/study/jobs/4g/submitit/%J_0_log.err
#BSUB -wa USR2
#BSUB -wt 2
#
# Rendered by hpcscale 0.1.0 for site summitdev: lsf + jsrun.
# 4 rank(s) on 1 node(s), up to 4 per node; 4 GPU(s), 5 CPU core(s) per rank, walltime 04:00:00.
# Every rank runs the training core (from submitit's pickle) with: --site summitdev --engine horovod --data '${MEMBERWORK}/hpcscale-data' --out /scratch/study/jobs/4g --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --max-requeues 3 --time-limit 14400 --study 0123abcd --job 4g
set -eo pipefail
cd "${LS_SUBCWD:-.}"
module load gcc/5.4.0
module load cuda/9.0.69
module load spectrum-mpi
export OMP_NUM_THREADS=5
export HPCSCALE_SITE=summitdev
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=4
export HPCSCALE_SITE_DIGEST=c28484c288d6481c20d6feeef2b8881868ad2ef001b9462ed51a321463c11882
export HOROVOD_GPU_ALLREDUCE=NCCL
export SUBMITIT_EXECUTOR=lsf
module purge
source /path/venv/bin/activate
conda activate hpcscale-env
jsrun --nrs 4 --tasks_per_rs 1 --cpu_per_rs 5 --gpu_per_rs 1 --rs_per_host 4 --bind packed:5 /path/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/4g/submitit
