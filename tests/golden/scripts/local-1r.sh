#!/bin/bash
# local job hpcscale-local-1r: no scheduler; runs on this machine.
#
# Rendered by hpcscale 0.1.0 for site local: local + local.
# 1 rank(s) on 1 node(s), up to 1 per node; 0 GPU(s), 8 CPU core(s) per rank, walltime 01:00:00.
set -eo pipefail
export OMP_NUM_THREADS=8
export HPCSCALE_SITE=local
export HPCSCALE_WORLD_SIZE=1
export HPCSCALE_RANKS_PER_NODE=1
export HPCSCALE_SITE_DIGEST=291d5cce0d3d697ddd9588ebc97ca1d139c7187d1cee27875f070c4e16532f09
python -u -m hpcscale.train --site local --engine torch --data hpcscale-data --out study/1r --model jishnet --batch 7 --epochs 5 --target-loss 1.4 --time-limit 3600
