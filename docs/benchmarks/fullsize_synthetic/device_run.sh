#!/usr/bin/env bash
# The full-size learning proof as it ran on the lent GPU machine (one command may run 10 minutes there).
#   bash docs/benchmarks/fullsize_synthetic/device_run.sh start OUT [SECONDS]   data, detached training runs
#     (SUITE=1: the test suite beside them, NOBIAS=1: the use_bias=False run beside, DIST=1: the 2-rank check)
#   bash docs/benchmarks/fullsize_synthetic/device_run.sh wait SECONDS OUT   keep the machine busy, then collect
#   bash docs/benchmarks/fullsize_synthetic/device_run.sh score CHECKPOINT OUT   devkit scores of a checkpoint on the
#     held-out scenes: fp32, --amp (fp16 autocast) and --amp with the fp16 sparse middle encoder
#     (model.sparse_conv_fp16_inference=True), the accuracy side of issue #12's inference switches
# `start` copies the checkout to $W (so later calls that refresh the checkout cannot change the running code),
# writes the 50-scene synthetic set, and starts the trainings with setsid: they outlive the command and go on
# across device calls until the machine is given back. On a machine without the 10-minute limit, run the two
# `tools/train.py` commands below directly; `--resume` continues either one from its last epoch checkpoint.
set -uo pipefail
W=${W:-/tmp/proof}
CFG=projects/configs/fullsize_proof/cmt_voxel0100_r50_800x320_synthetic_heldout.py
DIST_CFG=projects/configs/fullsize_proof/cmt_voxel0100_r50_dist_check.py
what=$1

collect() {  # $1: OUT folder; logs and scalars of every run, packed into one file
  local out=$1
  mkdir -p "$out"
  (cd "$W" && tar czf "$out/proof_logs.tar.gz" --exclude='*.pth' logs work_dirs 2>/dev/null)
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv > "$out/nvidia_smi_end.csv" 2>&1
  for f in "$W"/logs/*.log; do echo "== $f"; grep -E "Epoch\(train\)|Epoch\(val\)|mAP|NDS|Error|error|Traceback" "$f" | tail -6; done
}

case $what in
start)
  OUT=$2
  nvidia-smi
  mkdir -p "$W" && cp -a . "$W/" && cd "$W" || exit 1
  export PYTHONPATH=$W:$PYTHONPATH
  mkdir -p logs
  t0=$(date +%s)
  # SUITE=1: the whole test suite on this GPU machine, beside the data and the training (its log: logs/pytest_gpu.log)
  if [ "${SUITE:-0}" = 1 ]; then
    (cd "$W" && timeout 540 python -m pytest tests -q -n 6 -p no:cacheprovider -rs > logs/pytest_gpu.log 2>&1; \
      echo "pytest rc=$?" >> logs/pytest_gpu.log) &
  fi
  python tools/create_data.py synthetic --out data/nuscenes-synthetic-50 --scenes 50 --seed 0 > logs/create_data.log 2>&1 \
    || { tail -30 logs/create_data.log; exit 1; }
  echo "data: $(( $(date +%s) - t0 )) s"; tail -3 logs/create_data.log
  # the proof (bias on, bias_mode=auto); NOBIAS=1 also starts the same schedule with the bias off beside it
  setsid nohup python tools/train.py $CFG --work-dir work_dirs/bias > logs/train_bias.log 2>&1 < /dev/null &
  if [ "${NOBIAS:-0}" = 1 ]; then
    setsid nohup python tools/train.py $CFG --work-dir work_dirs/nobias \
      --cfg-options model.pts_bbox_head.use_bias=False > logs/train_nobias.log 2>&1 < /dev/null &
  fi
  # DIST=1: distributed path, 2 ranks sharing the one GPU through gloo, a few iterations, a checkpoint, a resume
  if [ "${DIST:-0}" = 1 ]; then
    PORT=29611 bash tools/dist_train.sh $DIST_CFG 2 --work-dir work_dirs/dist \
      --cfg-options env_cfg.dist_cfg.backend=gloo > logs/dist_first.log 2>&1
    echo "dist first: rc=$?"
    PORT=29612 bash tools/dist_train.sh $DIST_CFG 2 --work-dir work_dirs/dist --resume \
      --cfg-options env_cfg.dist_cfg.backend=gloo train_cfg.max_iters=12 > logs/dist_resume.log 2>&1
    echo "dist resume: rc=$?"
    ls -la work_dirs/dist
    grep -hE "Iter\(train\)|Resum|resum|Saving|memory" logs/dist_*.log | tail -20
  fi
  sleep $(( ${3:-420} - ($(date +%s) - t0) ))
  collect "$OUT"
  ;;
wait)
  sleep "$2"
  collect "$3"
  ;;
score)
  CK=$2; OUT=$3
  cd "$W" || exit 1
  export PYTHONPATH=$W:$PYTHONPATH
  mkdir -p "$OUT"
  for run in fp32 amp amp_sparse_fp16; do
    case $run in
      fp32) extra=();;
      amp) extra=(--amp);;
      amp_sparse_fp16) extra=(--amp --cfg-options model.sparse_conv_fp16_inference=True);;
    esac
    python tools/test.py $CFG "$CK" --work-dir "work_dirs/score_$run" "${extra[@]}" > "$OUT/test_$run.log" 2>&1
    echo "$run: rc=$? $(grep -oE 'NuScenes/(mAP|NDS|mATE|mAOE): [0-9.]+' "$OUT/test_$run.log" | tr '\n' ' ')"
  done
  ;;
*)
  echo "usage: device_run.sh start OUT [SECONDS] | wait SECONDS OUT | score CHECKPOINT OUT" >&2; exit 2;;
esac
