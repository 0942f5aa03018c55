# call 1 (session 30): the forward's launch plans. GPU tests of the plans and launches, host pieces, the idle probe
# and the attention benchmark of HEAD (scratch/before) and the working tree alternating, then #12's speed script
nvidia-smi --query-gpu=name,driver_version --format=csv; lscpu | grep -E "^Model name|^CPU\(s\)"; grep "device setup" .setup.log
export PYTHONPATH=$PWD:$PYTHONPATH
timeout 150 python -m pytest -q -m gpu tests/attention/test_triton_forward_plan.py tests/attention/test_triton_launch.py -p no:cacheprovider > $OUT/gpu_tests_plans.log 2>&1; tail -2 $OUT/gpu_tests_plans.log
timeout 60 python scratch/host_pieces_s30.py > $OUT/host_pieces.txt 2>&1; grep -v Warning $OUT/host_pieces.txt | grep -v '^ '
run_before() { (cd scratch/before && PYTHONPATH=$PWD:$PYTHONPATH python tools/benchmarks/$1 "${@:2}"); }
run_before attention_idle_probe.py --out $OUT/idle_before > $OUT/idle_before.log 2>&1
python tools/benchmarks/attention_idle_probe.py --out $OUT/idle_after > $OUT/idle_after.log 2>&1
for f in idle_before idle_after; do echo "== $f"; grep -E "^\|" $OUT/$f/*.md | head -14; done
A=(--shapes voxel0100 --dtypes bfloat16 --phases train infer --rows triton nobias --no-reference --warmup 5 --iters 20)
for i in 1 2; do
  if [ $i = 1 ]; then run_before benchmark_attention.py "${A[@]}" --out $OUT/bench_b$i > $OUT/bench_b$i.log 2>&1; fi
  python tools/benchmarks/benchmark_attention.py "${A[@]}" --out $OUT/bench_a$i > $OUT/bench_a$i.log 2>&1
  if [ $i = 2 ]; then run_before benchmark_attention.py "${A[@]}" --out $OUT/bench_b$i > $OUT/bench_b$i.log 2>&1; fi
done
for f in b1 a1 a2 b2; do echo "== $f"; grep -E "^\| (triton|nobias)" $OUT/bench_$f/attention_benchmark.md | cut -d'|' -f2-9; done
timeout 280 bash tools/benchmarks/speed_targets.sh $OUT/speed_targets > $OUT/speed_targets.log 2>&1; tail -20 $OUT/speed_targets/speed_targets.md
