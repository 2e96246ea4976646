#!/usr/bin/env bash
# Wheels that `python -m bench --only gpu` needs on a GPU machine without network whose Python
# (3.12 by default) already has JAX and/or PyTorch with CUDA, numpy, h5py, ml-dtypes, absl-py,
# rich and packaging: Keras and the two small pure dependencies it lacks.
#
#   bash bench/gpu_wheels.sh [DIR] [PYTHON_VERSION]     default: .whl and 3.12
#
# DIR is added to git's exclude list, so it is never committed. On the GPU machine:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site DIR/*.whl && export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.whl}"
py="${2:-3.12}"
if [[ "$dir" != /* ]]; then  # inside the repository: keep it out of git
    exclude="$(git rev-parse --git-path info/exclude)"
    mkdir -p "$(dirname "$exclude")"
    grep -qxF "/$dir/" "$exclude" 2>/dev/null || echo "/$dir/" >>"$exclude"
fi
version_of_keras() {  # the course environment's Keras, else the one the course was last tested with
    local python
    for python in .venv/bin/python python3; do
        "$python" -c 'from importlib.metadata import version; print(version("keras"))' 2>/dev/null && return
    done
    echo 3.15.1
}
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dir" "keras==$(version_of_keras)" optree namex
ls -l "$dir"
