#!/bin/bash
#PBS -N hpcscale-titan-1g
#PBS -l nodes=1:ppn=16
#PBS -l walltime=02:00:00
#PBS -A CSC000
#PBS -j oe
#
# Rendered by hpcscale 0.1.0 for site titan: pbs + aprun.
# 1 rank(s) on 1 node(s), up to 1 per node; 1 GPU(s), 16 CPU core(s) per rank, walltime 02:00:00.
set -eo pipefail
cd "${PBS_O_WORKDIR:-.}"
module load cudatoolkit
export OMP_NUM_THREADS=16
export HPCSCALE_SITE=titan
export HPCSCALE_WORLD_SIZE=1
export HPCSCALE_RANKS_PER_NODE=1
export HPCSCALE_SITE_DIGEST=5aa44d408dfde80dd28b11346595307b75d52e6eafb24c02a4792eeefb3ff0f6
export CRAY_CUDA_MPS=1
aprun -n 1 -N 1 -d 16 -cc depth python -u -m hpcscale.train --site titan --engine horovod --data "${MEMBERWORK}"/hpcscale-data --out study/1g --model jishnet --batch 7 --epochs 10 --target-loss 1.2 --time-limit 7200
