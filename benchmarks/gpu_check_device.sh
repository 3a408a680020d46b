#!/bin/bash
# The device half of benchmarks/gpu_check.py, as one command on a lent GPU (docs/speed.md, "The device check").
# Prepared here first (about a minute; .gpu/ and .whl/ are in .git/info/exclude):
#   python benchmarks/cifar_carry.py pack ../shared/data/cifar10 .gpu/c10lt.npz
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform any -d .whl diffusers==0.42.1 tomli-w==1.2.0 importlib-metadata==8.7.0
# then the device tool: run(command="bash benchmarks/gpu_check_device.sh", carry=[".gpu", ".whl"], timeout_s=600)
# and, back here, python benchmarks/gpu_check_eval.py on the returned samples-*.npz.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 benchmarks/cifar_carry.py rebuild .gpu/c10lt.npz /tmp/c10 || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 benchmarks/gpu_check.py --data-root /tmp/c10 --out "$OUT" --minutes 8 2>&1 | tee "$OUT/gpu_check.log"
