#!/bin/bash
#SBATCH --job-name=hpcscale-pizdaint-2g
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=12
#SBATCH --time=02:00:00
#SBATCH --partition=normal
#SBATCH --constraint=gpu
#SBATCH --exclusive
#SBATCH --output=/scratch/study/jobs/2g/submitit/%j_0_log.out
#SBATCH --error=/scratch/study/jobs/2g/submitit/%j_0_log.err
#SBATCH --signal=USR2@120
#SBATCH --no-kill
#
# Rendered by hpcscale 0.1.0 for site pizdaint: slurm + srun.
# 2 rank(s) on 2 node(s), up to 1 per node; 2 GPU(s), 12 CPU core(s) per rank, walltime 02:00:00.
# Every rank runs the training core (from submitit's pickle) with: --site pizdaint --engine horovod --data '${SCRATCH}/hpcscale-data' --out /scratch/study/jobs/2g --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --max-requeues 3 --time-limit 7200 --study 0123abcd --job 2g
set -eo pipefail
module load daint-gpu
module load PyTorch
export OMP_NUM_THREADS=12
export HPCSCALE_SITE=pizdaint
export HPCSCALE_WORLD_SIZE=2
export HPCSCALE_RANKS_PER_NODE=1
export HPCSCALE_SITE_DIGEST=2ac4f60d0533e56fdb4ab8f3a76650870949d6f27a92ade640f64634b1b6265e
export NCCL_IB_HCA=ipogif0
export NCCL_IB_CUDA_SUPPORT=1
export SUBMITIT_EXECUTOR=slurm
srun --kill-on-bad-exit=1 --ntasks=2 --ntasks-per-node=1 --cpus-per-task=12 --unbuffered --output /scratch/study/jobs/2g/submitit/%j_%t_log.out --error /scratch/study/jobs/2g/submitit/%j_%t_log.err /opt/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/2g/submitit
