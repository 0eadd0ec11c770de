#!/bin/bash
# hpcscale local job hpcscale-local-4g: submitit's LocalExecutor runs these lines, then
# starts 4 rank(s) of: /opt/torch/.venv/bin/python3 -u -m submitit.core._submit /work/main/studies/h200c/jobs/4g/submitit
export OMP_NUM_THREADS=16
export HPCSCALE_SITE=local
export HPCSCALE_WORLD_SIZE=4
export HPCSCALE_RANKS_PER_NODE=4
export HPCSCALE_SITE_DIGEST=e77157f63275feb885101783df84211a863364b4a38504a3c5f4c3d3a616d600
