#!/bin/bash
#SBATCH --job-name=hpcscale-pizdaint-2g
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=12
#SBATCH --time=02:00:00
#SBATCH --partition=normal
#SBATCH --constraint=gpu
#SBATCH --exclusive
#SBATCH --output=hpcscale-%j.out
#SBATCH --error=hpcscale-%j.out
#SBATCH --signal=USR2@120
#
# Rendered by hpcscale 0.1.0 for site pizdaint: slurm + srun.
# 2 rank(s) on 2 node(s), up to 1 per node; 2 GPU(s), 12 CPU core(s) per rank, walltime 02:00:00.
set -eo pipefail
module load daint-gpu
module load PyTorch
export OMP_NUM_THREADS=12
export HPCSCALE_SITE=pizdaint
export HPCSCALE_WORLD_SIZE=2
export HPCSCALE_RANKS_PER_NODE=1
export HPCSCALE_SITE_DIGEST=d9dc1aee87e940a143a6b5c6376099d5c467c93964348f34442b3f8babe091db
export NCCL_IB_HCA=ipogif0
export NCCL_IB_CUDA_SUPPORT=1
srun --kill-on-bad-exit=1 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=12 python -u -m hpcscale.train --site pizdaint --engine horovod --data "${SCRATCH}"/hpcscale-data --out study/2g --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --time-limit 7200
