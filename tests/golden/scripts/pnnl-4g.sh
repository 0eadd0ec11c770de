#!/bin/bash
#SBATCH --job-name=hpcscale-pnnl-4g
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:2
#SBATCH --time=04:00:00
#SBATCH --partition=gpu
#SBATCH --output=/scratch/study/jobs/4g/submitit/%j_0_log.out
#SBATCH --error=/scratch/study/jobs/4g/submitit/%j_0_log.err
#SBATCH --signal=USR2@120
#SBATCH --no-kill
#
# Rendered by hpcscale 0.1.0 for site pnnl: slurm + srun.
# 4 rank(s) on 2 node(s), up to 2 per node; 4 GPU(s), 8 CPU core(s) per rank, walltime 04:00:00.
# Every rank runs the training core (from submitit's pickle) with: --site pnnl --engine horovod --data hpcscale-data --out /scratch/study/jobs/4g --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --max-requeues 3 --time-limit 14400 --study 0123abcd --job 4g
set -eo pipefail
module load gcc/7.1.0
module load cuda/9.2.148
module load openmpi/3.1.0
export OMP_NUM_THREADS=8
export HPCSCALE_SITE=pnnl
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=2
export HPCSCALE_SITE_DIGEST=8b9cf9d5e8ee3532e0e854a0802aa57c022db106be7c4e8a934dee98dfe86002
export SUBMITIT_EXECUTOR=slurm
srun --kill-on-bad-exit=1 --ntasks=4 --ntasks-per-node=2 --cpus-per-task=8 --unbuffered --output /scratch/study/jobs/4g/submitit/%j_%t_log.out --error /scratch/study/jobs/4g/submitit/%j_%t_log.err /opt/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/4g/submitit
