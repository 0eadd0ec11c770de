#!/bin/bash
#SBATCH --job-name=hpcscale-local-nodes-1r
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=1
#SBATCH --time=00:20:00
#SBATCH --partition=nodes
#SBATCH --output=/scratch/study/jobs/1r/submitit/%j_0_log.out
#SBATCH --error=/scratch/study/jobs/1r/submitit/%j_0_log.err
#SBATCH --signal=USR2@120
#
# Rendered by hpcscale 0.1.0 for site local-nodes: slurm + srun.
# 1 rank(s) on 1 node(s), up to 1 per node; 0 GPU(s), 1 CPU core(s) per rank, walltime 00:20:00.
# Every rank runs the training core (from submitit's pickle) with: --site local-nodes --engine torch --data hpcscale-data --out /scratch/study/jobs/1r --model jishnet-small --batch 7 --epochs 2 --target-loss 1.5 --max-requeues 3 --time-limit 1200 --study 0123abcd --job 1r
set -eo pipefail
export OMP_NUM_THREADS=1
export HPCSCALE_SITE=local-nodes
export HPCSCALE_WORLD_SIZE=1
export HPCSCALE_RANKS_PER_NODE=1
export HPCSCALE_SITE_DIGEST=9aa8b334e80568ab8640c87eee4635355e842ed95d1a551fe3d162a64c3468f9
export SUBMITIT_EXECUTOR=slurm
module purge
source /path/venv/bin/activate
conda activate hpcscale-env
srun --kill-on-bad-exit=1 --ntasks=1 --ntasks-per-node=1 --cpus-per-task=1 --unbuffered --output /scratch/study/jobs/1r/submitit/%j_%t_log.out --error /scratch/study/jobs/1r/submitit/%j_%t_log.err /path/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/1r/submitit
