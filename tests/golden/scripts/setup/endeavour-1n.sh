#!/bin/bash
#PBS -N hpcscale-endeavour-4r
#PBS -l select=1:ncpus=48:mpiprocs=4
#PBS -l place=scatter:excl
#PBS -l walltime=02:00:00
#PBS -q workq
#PBS -j oe
#
# Rendered by hpcscale 0.1.0 for site endeavour: pbs + mpirun.
# 4 rank(s) on 1 node(s), up to 4 per node; 0 GPU(s), 12 CPU core(s) per rank, walltime 02:00:00.
# Every rank runs the training core (from submitit's pickle) with: --site endeavour --engine horovod --data hpcscale-data --out /scratch/study/jobs/4r --model 3dgan --batch 8 --epochs 25 --target-loss 0.1 --max-requeues 3 --time-limit 7200 --inter-threads 2 --study 0123abcd --job 4r
set -eo pipefail
cd "${PBS_O_WORKDIR:-.}"
export OMP_NUM_THREADS=11
export HPCSCALE_SITE=endeavour
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=4
export HPCSCALE_SITE_DIGEST=feb838d8f64f80b2efe936f3158e227006ff59699b442e1007497c2d04348b29
export HOROVOD_FUSION_THRESHOLD=134217728
export I_MPI_FABRICS=shm:ofi
export KMP_BLOCKTIME=1
export SUBMITIT_EXECUTOR=pbs
module purge
source /path/venv/bin/activate
conda activate hpcscale-env
mpirun -np 4 -ppn 4 /path/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/4r/submitit
