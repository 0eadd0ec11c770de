#!/bin/bash
# hpcscale local job hpcscale-local-2r: submitit's LocalExecutor runs these lines, then
# starts 2 rank(s) of: /opt/venv/bin/python -u -m submitit.core._submit /scratch/study/jobs/2r/submitit
# Every rank runs the training core with: --site local --engine torch --data hpcscale-data --out /scratch/study/jobs/2r --model jishnet --batch 7 --epochs 5 --target-loss 1.4 --max-requeues 3 --time-limit 3600 --study 0123abcd --job 2r
export OMP_NUM_THREADS=4
export HPCSCALE_SITE=local
export HPCSCALE_WORLD_SIZE=2
export HPCSCALE_RANKS_PER_NODE=2
export HPCSCALE_SITE_DIGEST=029a079781b3d60687cc7d22105dd67e6812e11fcb49bf6f16c5a0398d48742a
