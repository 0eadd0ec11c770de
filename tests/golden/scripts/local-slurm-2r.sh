#!/bin/bash
#SBATCH --job-name=hpcscale-local-slurm-2r
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=4
#SBATCH --time=00:30:00
#SBATCH --partition=debug
#SBATCH --output=hpcscale-%j.out
#SBATCH --error=hpcscale-%j.out
#SBATCH --signal=USR2@120
#
# Rendered by hpcscale 0.1.0 for site local-slurm: slurm + srun.
# 2 rank(s) on 1 node(s), up to 2 per node; 0 GPU(s), 4 CPU core(s) per rank, walltime 00:30:00.
set -eo pipefail
export OMP_NUM_THREADS=4
export HPCSCALE_SITE=local-slurm
export HPCSCALE_WORLD_SIZE=2
export HPCSCALE_RANKS_PER_NODE=2
export HPCSCALE_SITE_DIGEST=74d34a5693a0d24a7a6134c0e8d4b066cddb3b050c97691458ca53ef9b7d5d6c
srun --kill-on-bad-exit=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task=4 python -u -m hpcscale.train --site local-slurm --engine torch --data hpcscale-data --out study/2r --model jishnet --batch 7 --epochs 5 --target-loss 1.4 --time-limit 1800
