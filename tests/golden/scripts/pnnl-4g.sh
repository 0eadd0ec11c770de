#!/bin/bash
#SBATCH --job-name=hpcscale-pnnl-4g
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:2
#SBATCH --time=04:00:00
#SBATCH --partition=gpu
#SBATCH --output=hpcscale-%j.out
#SBATCH --error=hpcscale-%j.out
#SBATCH --signal=USR2@120
#
# Rendered by hpcscale 0.1.0 for site pnnl: slurm + srun.
# 4 rank(s) on 2 node(s), up to 2 per node; 4 GPU(s), 8 CPU core(s) per rank, walltime 04:00:00.
set -eo pipefail
module load gcc/7.1.0
module load cuda/9.2.148
module load openmpi/3.1.0
export OMP_NUM_THREADS=8
export HPCSCALE_SITE=pnnl
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=2
export HPCSCALE_SITE_DIGEST=013b7ef5ce77d0b156f9917f73fb5a4a13cd23201800adc31e470b7f84d5ebba
srun --kill-on-bad-exit=1 --ntasks=4 --ntasks-per-node=2 --cpus-per-task=8 python -u -m hpcscale.train --site pnnl --engine horovod --data hpcscale-data --out study/4g --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --time-limit 14400
