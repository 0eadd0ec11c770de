#!/bin/bash
# hpcscale local job hpcscale-local-1r: submitit's LocalExecutor runs these lines, then
# starts 1 rank(s) of: /path/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/1r/submitit
# Every rank runs the training core with: --site local --engine torch --data hpcscale-data --out /scratch/study/jobs/1r --model jishnet --batch 7 --epochs 5 --target-loss 1.4 --max-requeues 3 --time-limit 3600 --study 0123abcd --job 1r
export OMP_NUM_THREADS=8
export HPCSCALE_SITE=local
export HPCSCALE_WORLD_SIZE=1
export HPCSCALE_RANKS_PER_NODE=1
export HPCSCALE_SITE_DIGEST=87f99bef42c4cfbf6d4d7ea4b15765cd9daf4c5cceede665423837a1e1b6264e
module purge
source /path/venv/bin/activate
conda activate hpcscale-env
