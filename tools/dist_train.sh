#!/usr/bin/env bash
# Distributed training through torchrun, multi-node ready:
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 PORT=29500 tools/dist_train.sh CONFIG 8   # on each node
# On a CPU-only machine pass `--cfg-options env_cfg.dist_cfg.backend=gloo` (GPUS = processes).
set -euo pipefail
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
