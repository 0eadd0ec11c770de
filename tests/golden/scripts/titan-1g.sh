#!/bin/bash
#PBS -N hpcscale-titan-1g
#PBS -l nodes=1:ppn=16
#PBS -l walltime=02:00:00
#PBS -A CSC000
#PBS -j oe
#
# Rendered by hpcscale 0.1.0 for site titan: pbs + aprun.
# 1 rank(s) on 1 node(s), up to 1 per node; 1 GPU(s), 16 CPU core(s) per rank, walltime 02:00:00.
# Every rank runs the training core (from submitit's pickle) with: --site titan --engine horovod --data '${MEMBERWORK}/hpcscale-data' --out /scratch/study/jobs/1g --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --max-requeues 3 --time-limit 7200 --study 0123abcd --job 1g
set -eo pipefail
cd "${PBS_O_WORKDIR:-.}"
module load cudatoolkit
export OMP_NUM_THREADS=16
export HPCSCALE_SITE=titan
export HPCSCALE_WORLD_SIZE=1
export HPCSCALE_RANKS_PER_NODE=1
export HPCSCALE_SITE_DIGEST=48eb2ad5e23c3c023d6afca5e2cf31b59a7dfccca804853296713134d9fb33a8
export CRAY_CUDA_MPS=1
export SUBMITIT_EXECUTOR=torque
aprun -n 1 -N 1 -d 16 -cc depth /opt/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/1g/submitit
