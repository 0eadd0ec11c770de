set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl29/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/.wt29 PYTHONUNBUFFERED=1
cd .wt29
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "from hpcscale import workloads; workloads.generator('3dgan')('/tmp/gan', 2000, seed=0, workers=8)" || exit 4
A="--data /tmp/gan --model 3dgan --max-events 1200 --epochs 1 --no-stop-at-target --fom-every 50 --ttl-window 10 --device cuda"
mkdir -p /tmp/runs
T0=$(date +%s)
timeout 45 python3 spawn.py 1 $A --out /tmp/runs/sync-1 > /tmp/runs/log-sync 2>&1; echo "sync done $(( $(date +%s)-T0 ))s"
for w in 1 2 4 7; do
  timeout 45 python3 spawn.py $((w+1)) $A --engine master-worker --out /tmp/runs/mw-$w > /tmp/runs/log-mw$w 2>&1; echo "mw $w done $(( $(date +%s)-T0 ))s"
done
python3 collect.py /tmp/runs > $OUT/h200.json
tail -c 3000 /tmp/runs/log-mw1 > $OUT/log-mw1.txt; tail -c 3000 /tmp/runs/log-mw4 > $OUT/log-mw4.txt
python3 -c "import json; d=json.load(open('$OUT/h200.json')); [print(k, v.get('status'), v.get('samples_per_s'), v.get('val_fom'), (v.get('master_worker') or {}).get('staleness_mean')) for k,v in d.items()]"
