#!/usr/bin/env bash
# Run from the repository root on the device machine, with .whl29/ holding the cp312 wheels its
# image lacks (pydantic, pydantic-core, annotated-types, typing-inspection, submitit, blosc,
# mlperf-logging) and, for ab.sh, .whl29/before/ the hpcscale and bench folders of the commit before.
# same host A/B of DLT's parts: the rank importing torch.distributed.pipelining at start (before)
# or only to build a pipeline (after: torch._dynamo imported in threads.preimport_dynamo's thread)
[ -n "$NOINSTALL" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl29/*.whl >/dev/null 2>&1 || exit 1
export PYTHONUNBUFFERED=1
root=$PWD
nvidia-smi --query-gpu=name --format=csv,noheader
for round in 1 2; do
  for v in before after; do
    if [ $v = before ]; then dir=$root/.whl29/before; else dir=$root; fi
    export PYTHONPATH=/tmp/site:$dir
    echo "== round $round: $v"
    cd $dir && python3 -c "import hpcscale.train.pipeline as p; print(p.SCHEDULES)" && python3 bench/workloads.py --out /tmp/bw --events ${EV:-400} --steps ${ST:-40} ${RES:+--resolution $RES} --run scnet --run "jishnet --input sparse-device" --run jishnet 2>&1 | grep -A4 "start-up"
  done
done
