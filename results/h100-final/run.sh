#!/usr/bin/env bash
# Run from the repository root on the device machine, with .whl29/ holding the cp312 wheels its
# image lacks (pydantic, pydantic-core, annotated-types, typing-inspection, submitit, blosc,
# mlperf-logging) and, for ab.sh, .whl29/before/ the hpcscale and bench folders of the commit before.
# issue 30's bench on one GPU: the LArTPC half, the other half, staging, the rank's imports
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl29/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import torch; print(torch.__version__, torch.version.cuda)" | tee -a $OUT/gpu.txt
what=${1:-all}
if [ "$what" = all ] || [ "$what" = imports ]; then
  for i in 1 2 3; do python3 -c "import time; t=time.time(); import torch; a=time.time()-t; import hpcscale.train.config, hpcscale.train.loop; print('import torch %.2f s, then the loop %.2f s' % (a, time.time()-t-a))"; done 2>&1 | tee $OUT/imports.txt
  python3 -X importtime -c "import hpcscale.train.config, hpcscale.train.loop" 2> $OUT/importtime.txt
fi
if [ "$what" = all ] || [ "$what" = lartpc ]; then
  python3 bench/workloads.py --events 1000 --steps 300 --run textbook --run "jishnet --no-fused-first-block" --run jishnet --run "jishnet --compile default" --run scnet --run "jishnet --input sparse-device" 2>&1 | grep -v pow_by_natural | tee $OUT/lartpc.txt
fi
if [ "$what" = all ] || [ "$what" = tensors ]; then
  python3 bench/workloads.py --events 4000 --steps 120 --run cms-jets --run "cms-jets --batch 512" --run 3dgan 2>&1 | tee $OUT/tensors.txt
fi
if [ "$what" = all ] || [ "$what" = staging ]; then
  python3 bench/staging.py --data /tmp/hpcscale-bench-workloads/events-3600px-1000 --grid 1x0 --grid 16x1 2>&1 | tee $OUT/staging.txt
fi
