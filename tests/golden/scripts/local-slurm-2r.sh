#!/bin/bash
#SBATCH --job-name=hpcscale-local-slurm-2r
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=4
#SBATCH --time=00:30:00
#SBATCH --partition=debug
#SBATCH --output=/scratch/study/jobs/2r/submitit/%j_0_log.out
#SBATCH --error=/scratch/study/jobs/2r/submitit/%j_0_log.err
#SBATCH --signal=USR2@120
#
# Rendered by hpcscale 0.1.0 for site local-slurm: slurm + srun.
# 2 rank(s) on 1 node(s), up to 2 per node; 0 GPU(s), 4 CPU core(s) per rank, walltime 00:30:00.
# Every rank runs the training core (from submitit's pickle) with: --site local-slurm --engine torch --data hpcscale-data --out /scratch/study/jobs/2r --model jishnet --batch 7 --epochs 5 --target-loss 1.4 --max-requeues 3 --time-limit 1800 --study 0123abcd --job 2r
set -eo pipefail
export OMP_NUM_THREADS=4
export HPCSCALE_SITE=local-slurm
export HPCSCALE_WORLD_SIZE=2
export HPCSCALE_RANKS_PER_NODE=2
export HPCSCALE_SITE_DIGEST=a3ee89c14726fb16238ca3b1158f3c7a8c4fa9bfab52d9322f104488a531a8dd
export SUBMITIT_EXECUTOR=slurm
srun --kill-on-bad-exit=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task=4 --unbuffered --output /scratch/study/jobs/2r/submitit/%j_%t_log.out --error /scratch/study/jobs/2r/submitit/%j_%t_log.err /opt/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/2r/submitit
