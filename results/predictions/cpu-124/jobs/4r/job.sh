#!/bin/bash
# hpcscale local job hpcscale-cpu4-4r: submitit's LocalExecutor runs these lines, then
# starts 4 rank(s) of: /root/.pyenv/versions/3.11.7/bin/python3 -u -m submitit.core._submit /tmp/wt28val/cpu-124/jobs/4r/submitit
# Every rank runs the training core with: --site cpu4 --engine torch --data /tmp/wt28val/ev --out /tmp/wt28val/cpu-124/jobs/4r --model jishnet-small --batch 7 --max-requeues 3 --time-limit 3600 --study 5e59f3e7860c --job 4r --epochs 3 --ttl-window 5 --noise-split --target-loss 1.55
export OMP_NUM_THREADS=1
export HPCSCALE_SITE=cpu4
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=4
export HPCSCALE_SITE_DIGEST=0eb075e8bf5911a5fc6dc56658dde7a78d9d36c4dffed0a3ff2c1242e83d1b85
