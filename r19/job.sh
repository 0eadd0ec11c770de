#!/bin/bash
# local job r19: no scheduler; runs on this machine.
#
# Rendered by hpcscale 0.1.0 for site local: local + local.
# 2 rank(s) on 1 node(s), up to 2 per node; 0 GPU(s), 1 CPU core(s) per rank, walltime 01:00:00.
set -eo pipefail
export OMP_NUM_THREADS=1
export HPCSCALE_SITE=local
export HPCSCALE_WORLD_SIZE=2
export HPCSCALE_RANKS_PER_NODE=2
export HPCSCALE_SITE_DIGEST=e3935c0437df79d7f655e2bd8db8f652d7b40d036eb2db9a7725afc2ebe06593
/root/.pyenv/versions/3.11.7/bin/python3 -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 --no-python /root/.pyenv/versions/3.11.7/bin/python3 -u -m hpcscale.command --site local --engine torch --out /work/main/r19 --job r19 --time-limit 3600 --target-loss 0.5 --ttl-window 5 -- python3 /work/main/examples/ddp/train_track.py --epochs 2
