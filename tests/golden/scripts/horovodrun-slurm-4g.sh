#!/bin/bash
#SBATCH --job-name=hpcscale-hvd-4g
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:4
#SBATCH --time=01:00:00
#SBATCH --partition=gpu
#SBATCH --exclusive
#SBATCH --output=/scratch/study/jobs/4g/submitit/%j_0_log.out
#SBATCH --error=/scratch/study/jobs/4g/submitit/%j_0_log.err
#SBATCH --signal=USR2@120
#
# Rendered by hpcscale 0.1.0 for site hvd: slurm + horovodrun.
# 4 rank(s) on 1 node(s), up to 4 per node; 4 GPU(s), 4 CPU core(s) per rank, walltime 01:00:00.
# Every rank runs the training core (from submitit's pickle) with: --site hvd --engine horovod --data hpcscale-data --out /scratch/study/jobs/4g --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --max-requeues 3 --time-limit 3600 --study 0123abcd --job 4g
set -eo pipefail
export OMP_NUM_THREADS=4
export HPCSCALE_SITE=hvd
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=4
export HPCSCALE_SITE_DIGEST=2f666140679469fbd370c6886d299fac6db647dd9ddb45f6a7cbea256db7d1b6
export SUBMITIT_EXECUTOR=slurm-mpi
horovodrun -np 4 -H localhost:4 /opt/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/4g/submitit
