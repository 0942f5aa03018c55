#!/usr/bin/env bash
# Install everything the project needs into the active Python environment, or into ./.venv when none is active.
# Idempotent: a second run checks a stamp plus the imports and returns in seconds.
#
#   bash tools/install.sh            # CPU or CUDA, detected (nvcc/nvidia-smi present -> mmcv with CUDA ops)
#   FORCE_CUDA=1 bash tools/install.sh   # build mmcv's CUDA ops even without a visible GPU (needs nvcc)
#   TORCH_SPEC='torch==2.13.0' ...   # torch to install when none (>= 2.1) is present
#
# The steps and why they are ordered so are explained in requirements.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "[install] $*"; }

if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${CONDA_PREFIX:-}" ]; then
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    say "creating virtualenv $ROOT/.venv"
    python3 -m venv "$ROOT/.venv"
  fi
  # shellcheck disable=SC1091
  . "$ROOT/.venv/bin/activate"
fi
PY=python
ENV_DIR=$($PY -c 'import sys; print(sys.prefix)')
STAMP="$ENV_DIR/.cmt-plugin-install-stamp"
want=$(cat "$ROOT/requirements.txt" "$ROOT"/requirements/*.txt "$ROOT/tools/install.sh" | sha256sum | cut -c1-16)

check_imports() {
  $PY - <<'PYEOF' 2>/dev/null
import torch, mmengine, mmcv, mmdet, mmdet3d, nuscenes, pytest  # noqa
from mmcv.ops import Voxelization  # noqa: the compiled ops must be there
PYEOF
}
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && check_imports; then
  say "environment $ENV_DIR is up to date"
  exit 0
fi

have_cuda=0
if [ "${FORCE_CUDA:-0}" = "1" ] || { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
  have_cuda=1
fi

# 1. torch (keep an existing torch >= 2.1) and the build tools
if ! $PY -c 'import torch, sys; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 1))' 2>/dev/null; then
  spec=${TORCH_SPEC:-torch==2.13.0}
  say "installing $spec"
  $PY -m pip install -q "$spec"
fi
$PY -m pip install -q -r "$ROOT/requirements/build.txt" opencv-python-headless

# 2. mmcv 2.1.0 with ops, from source (about 10 min on 2 cores the first time; pip caches the wheel)
if ! $PY -c 'from mmcv.ops import Voxelization' 2>/dev/null; then
  export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if [ $have_cuda = 1 ] && command -v nvcc >/dev/null 2>&1; then
    export FORCE_CUDA=1
    say "building mmcv 2.1.0 with CUDA ops (nvcc $(nvcc --version | tail -1))"
  else
    [ $have_cuda = 1 ] && say "WARNING: a GPU is visible but nvcc is not on PATH: mmcv gets CPU ops only (set CUDA_HOME/PATH)"
    say "building mmcv 2.1.0 with CPU ops (about 10 minutes on 2 cores the first time, cached after)"
  fi
  $PY -m pip install --no-build-isolation mmcv==2.1.0
fi

# 3. the rest of the stack
say "installing the OpenMMLab stack and its runtime dependencies"
$PY -m pip install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements/tests.txt"
$PY -m pip install -q --no-deps -r "$ROOT/requirements/nodeps.txt"

# 4. spconv 2 on GPU machines: mmdet3d's SparseEncoder switches to it by itself when it imports (about 2.5x faster
#    than mmcv's sparse convolution at voxel0100; docs/benchmarks). CPU installs keep mmcv's op. The wheel is the
#    newest spconv/cumm CUDA build not newer than torch's CUDA (spconv bundles its own kernels; cu126 runs under
#    torch's CUDA 13 too). SKIP_SPCONV=1 skips it.
if [ $have_cuda = 1 ] && [ "${SKIP_SPCONV:-0}" != "1" ] && ! $PY -c 'import spconv.pytorch' 2>/dev/null; then
  suffix=$($PY - <<'PYEOF'
import torch
cuda = torch.version.cuda
if cuda:
    major, minor = (int(x) for x in cuda.split('.')[:2])
    builds = [(12, 6), (12, 4), (12, 1), (12, 0), (11, 8), (11, 7)]
    print(next((f'cu{a}{b}' for a, b in builds if (major, minor) >= (a, b)), ''))
PYEOF
)
  if [ -n "$suffix" ]; then
    say "installing spconv-$suffix (sparse convolution for the voxel configs; torch CUDA $($PY -c 'import torch; print(torch.version.cuda)'))"
    $PY -m pip install -q "spconv-$suffix" "cumm-$suffix" || say "WARNING: spconv-$suffix did not install; mmcv's sparse convolution is used"
  else
    say "torch has no CUDA build (or CUDA < 11.7): keeping mmcv's sparse convolution"
  fi
fi

check_imports || { say "ERROR: the stack does not import; run: $PY -c 'import mmdet3d, mmcv.ops'"; exit 1; }
echo "$want" > "$STAMP"
say "done: $($PY -c 'import torch, mmcv, mmdet, mmdet3d, mmengine; print("torch", torch.__version__, "mmengine", mmengine.__version__, "mmcv", mmcv.__version__, "mmdet", mmdet.__version__, "mmdet3d", mmdet3d.__version__)')"
say "environment: $ENV_DIR (activate with: . $ENV_DIR/bin/activate)"
