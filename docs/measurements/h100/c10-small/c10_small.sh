#!/bin/bash
# On the lent GPU: the CIFAR10-LT bench at a twentieth of the paper's schedule for one method.
# usage: bash .gpu/c10_small.sh METHOD   (writes $OUT/METHOD.log and $OUT/bench-METHOD.tgz)
set -o pipefail
M=$1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 .gpu/rebuild_cifar.py .gpu/c10lt.npz /tmp/c10 || exit 1
mkdir -p runs/c10-small
for f in .gpu/prev/*.tgz; do [ -f "$f" ] && tar xzf "$f"; done
cp .gpu/prev/*.npz runs/c10-small/ 2>/dev/null
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -m coral_ft bench cifar10-lt --data-root /tmp/c10 --scale small --methods "$M" --seeds 1 \
  --guidance-sweep 0.3,0.6,1 --set train.max_steps=60000 --set train.warmup_steps=200 \
  --set sample.compile=false --set bench.metric_network=classifier --set bench.reference_split=test \
  --out runs/c10-small --no-progress 2>&1 | tee $OUT/$M.log
tar czf $OUT/bench-$M.tgz --exclude='*.npz' --exclude='*.shards' --exclude='checkpoints' --exclude='*.safetensors' \
  --exclude='head' --exclude='samples' runs/c10-small
cp runs/c10-small/*.npz $OUT/ 2>/dev/null
ls -la $OUT
