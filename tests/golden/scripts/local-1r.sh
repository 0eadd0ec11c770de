#!/bin/bash
# hpcscale local job hpcscale-local-1r: submitit's LocalExecutor runs these lines, then
# starts 1 rank(s) of: /opt/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/1r/submitit
# Every rank runs the training core with: --site local --engine torch --data hpcscale-data --out /scratch/study/jobs/1r --model jishnet --batch 7 --epochs 5 --target-loss 1.4 --max-requeues 3 --time-limit 3600 --study 0123abcd --job 1r
export OMP_NUM_THREADS=8
export HPCSCALE_SITE=local
export HPCSCALE_WORLD_SIZE=1
export HPCSCALE_RANKS_PER_NODE=1
export HPCSCALE_SITE_DIGEST=029a079781b3d60687cc7d22105dd67e6812e11fcb49bf6f16c5a0398d48742a
