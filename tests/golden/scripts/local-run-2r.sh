#!/bin/bash
# local job first: no scheduler; runs on this machine.
#
# Rendered by hpcscale 0.1.0 for site local: local + local.
# 2 rank(s) on 1 node(s), up to 2 per node; 0 GPU(s), 4 CPU core(s) per rank, walltime 01:00:00.
set -eo pipefail
export OMP_NUM_THREADS=4
export HPCSCALE_SITE=local
export HPCSCALE_WORLD_SIZE=2
export HPCSCALE_RANKS_PER_NODE=2
export HPCSCALE_SITE_DIGEST=029a079781b3d60687cc7d22105dd67e6812e11fcb49bf6f16c5a0398d48742a
/opt/venv/bin/python -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 --no-python /opt/venv/bin/python -u -m hpcscale.train --site local --engine torch --data /scratch/events --out /scratch/runs/first --model jishnet --batch 7 --epochs 5 --target-loss 1.4 --max-requeues 3 --time-limit 3600 --job first
