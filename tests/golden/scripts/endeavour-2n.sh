#!/bin/bash
#PBS -N hpcscale-endeavour-8r
#PBS -l select=2:ncpus=48:mpiprocs=4
#PBS -l place=scatter:excl
#PBS -l walltime=02:00:00
#PBS -q workq
#PBS -j oe
#
# Rendered by hpcscale 0.1.0 for site endeavour: pbs + mpirun.
# 8 rank(s) on 2 node(s), up to 4 per node; 0 GPU(s), 12 CPU core(s) per rank, walltime 02:00:00.
set -eo pipefail
cd "${PBS_O_WORKDIR:-.}"
export OMP_NUM_THREADS=12
export HPCSCALE_SITE=endeavour
export HPCSCALE_WORLD_SIZE=8
export HPCSCALE_RANKS_PER_NODE=4
export HPCSCALE_SITE_DIGEST=e1256d0d266a41a491d03132b4fbbf6088a32ecb1d1b2497712484a3e0da2df9
export HOROVOD_FUSION_THRESHOLD=134217728
export I_MPI_FABRICS=shm:ofi
export KMP_BLOCKTIME=1
mpirun -np 8 -ppn 4 python -u -m hpcscale.train --site endeavour --engine horovod --data hpcscale-data --out study/8r --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --time-limit 7200
