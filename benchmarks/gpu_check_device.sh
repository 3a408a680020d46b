#!/bin/bash
# The GPU half of benchmarks/gpu_check.py on a machine with torch but no internet and no coral-ft
# install (docs/speed.md, "The GPU check"). Run from the checkout's root with OUT set to the folder
# to write, after packing .gpu/c10lt.npz (benchmarks/cifar_carry.py pack) and downloading .whl/;
# then evaluate the returned samples-*.npz anywhere with benchmarks/gpu_check_eval.py.
OUT=${OUT:?set OUT to the folder the check writes}
mkdir -p "$OUT"
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 benchmarks/cifar_carry.py rebuild .gpu/c10lt.npz /tmp/c10 || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 benchmarks/gpu_check.py --data-root /tmp/c10 --out "$OUT" --minutes 8 2>&1 | tee "$OUT/gpu_check.log"
