#!/usr/bin/env bash
# Issue #12's speed measurements in one run (179-186 s on an H200 in three whole runs on 2026-12-02; fits one
# 10-minute device call), then
# their verdicts (speed_targets.py). Each benchmark alternates the order of its runs over two rounds, because the
# host speed of a lent machine drifts and the model's forward is bound by the host.
#   bash tools/benchmarks/speed_targets.sh OUT            # on the GPU machine, nothing else running on it
#   SMOKE=1 bash tools/benchmarks/speed_targets.sh OUT    # CPU smoke run: demo config, tiny shapes (the test)
# Writes OUT/{attention,train,inference}/ (the benchmarks' JSON/markdown), OUT/machine.txt,
# OUT/host_speed_{start,end}.json (the host's speed before and after the benchmarks: host_speed.py) and
# OUT/speed_targets.{md,json}.
set -euo pipefail
OUT=${1:?usage: bash tools/benchmarks/speed_targets.sh OUT}
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT"
if [ "${SMOKE:-0}" = 1 ]; then
  ATT=(--quick --device cpu --warmup 0 --iters 1)
  MODEL=(--device cpu --config projects/configs/demo/cmt_demo_fusion_pillar_r18.py --points 2000 --cams 2
         --img-hw 96 256 --steps 1 --warmup 0)
  TRAIN=(--modes sdpa auto)
  INFER=(--precision fp16)
  HOST=(--device cpu --calls 200 --repeats 3)
else
  ATT=(--shapes voxel0100 --warmup 5 --iters 20)
  MODEL=()
  TRAIN=(--modes sdpa auto --steps 10 --warmup 3)
  INFER=(--precision fp16 --steps 20 --warmup 5)
  HOST=(--device cuda)
fi
{ date -u; nvidia-smi --query-gpu=name,driver_version,utilization.gpu,memory.used --format=csv 2>&1 || true
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv 2>&1 || true
  lscpu 2>/dev/null | grep -E "^Model name|^CPU\(s\)" || true; } > "$OUT/machine.txt"
if [ "${SMOKE:-0}" != 1 ] && ! python -c "import spconv" 2>/dev/null; then
  echo "speed_targets: spconv is not importable, so the model rows run mmcv's sparse convolution" | tee -a "$OUT/machine.txt"
fi
python tools/benchmarks/host_speed.py "${HOST[@]}" --out "$OUT/host_speed_start.json"
python tools/benchmarks/benchmark_attention.py "${ATT[@]}" --dtypes bfloat16 --phases train infer \
  --rows triton nobias --no-reference --out "$OUT/attention"
python tools/benchmarks/benchmark_model.py ${MODEL[@]+"${MODEL[@]}"} --amp config "${TRAIN[@]}" --rounds 2 --out "$OUT/train"
python tools/benchmarks/benchmark_model.py ${MODEL[@]+"${MODEL[@]}"} --inference "${INFER[@]}" --cuda-graph head all \
  --rounds 2 --out "$OUT/inference"
python tools/benchmarks/host_speed.py "${HOST[@]}" --out "$OUT/host_speed_end.json"
python tools/benchmarks/speed_targets.py --attention "$OUT/attention/attention_benchmark.json" \
  --train "$OUT/train/model_benchmark_config_amp.json" --inference "$OUT/inference/model_inference.json" \
  --host "$OUT/host_speed_start.json" "$OUT/host_speed_end.json" --out "$OUT"
