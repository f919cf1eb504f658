#!/usr/bin/env bash
# The CUDA checks, in one go, on a machine with an NVIDIA GPU and a CUDA build of torch (CPU machines skip
# these tests). Uses the machine's own torch: makes a venv that sees the system packages, adds what is
# missing from wheels in .whl/ (offline machines) or from the index, then runs the GPU tests and a real
# train + deploy on the GPU.
#   usage: scripts/check_cuda.sh [output folder]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/edgepeft-cuda}"
mkdir -p "$out"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible to torch'; print(torch.__version__, torch.cuda.get_device_name(0))"
python3 -m venv --system-site-packages "$out/venv"
pip="$out/venv/bin/python -m pip"
extra=(pydantic pydantic-core annotated-types typing-inspection tomli-w)
if [ -d .whl ]; then $pip install -q --no-deps --no-index --find-links .whl "${extra[@]}"; else $pip install -q "${extra[@]}"; fi
$pip install -q --no-deps --no-build-isolation -e .
py="$out/venv/bin/python"
$py -m pytest -q -m cuda tests/plugins/test_cuda.py -rs 2>&1 | tee "$out/pytest.txt"
$py -m edgepeft train --accelerator cuda --runs-dir "$out/runs" 2>&1 | tee "$out/train.txt"
$py -m edgepeft deploy "$out/runs/digits-distill" --device cuda-workstation --out "$out/dist" 2>&1 | tee "$out/deploy.txt"
