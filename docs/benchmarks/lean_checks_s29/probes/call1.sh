# call 1 (session 29): GPU tests of the attention (the row kernels' shared helper compiles), the idle probe and the
# attention benchmark of HEAD (scratch/before) and the working tree, alternating
nvidia-smi --query-gpu=name,driver_version --format=csv; lscpu | grep -E "^Model name|^CPU\(s\)"
export PYTHONPATH=$PWD:$PYTHONPATH
timeout 200 python -m pytest -q -m gpu tests/attention tests/tools -p no:cacheprovider > $OUT/gpu_tests.log 2>&1; tail -3 $OUT/gpu_tests.log
A=(--shapes voxel0100 --dtypes bfloat16 --phases train infer --rows triton nobias --no-reference --warmup 5 --iters 20)
run_before() { (cd scratch/before && PYTHONPATH=$PWD python tools/benchmarks/$1 "${@:2}"); }
run_before attention_idle_probe.py --out $OUT/idle_before > $OUT/idle_before.log 2>&1
python tools/benchmarks/attention_idle_probe.py --out $OUT/idle_after > $OUT/idle_after.log 2>&1
for i in 1 2; do
  if [ $i = 1 ]; then run_before benchmark_attention.py "${A[@]}" --out $OUT/bench_b$i > /dev/null 2>&1; fi
  python tools/benchmarks/benchmark_attention.py "${A[@]}" --out $OUT/bench_a$i > /dev/null 2>&1
  if [ $i = 2 ]; then run_before benchmark_attention.py "${A[@]}" --out $OUT/bench_b$i > /dev/null 2>&1; fi
done
for f in $OUT/idle_before $OUT/idle_after; do echo "== $f"; grep -E "^\|" $f/*.md | head -30; done
for f in b1 a1 a2 b2; do echo "== $f"; grep -E "^\| (triton|nobias)" $OUT/bench_$f/attention_benchmark.md | cut -d'|' -f2-9; done
cd $OUT && tar czf results.tgz idle_* bench_* gpu_tests.log && rm -rf idle_before idle_after bench_??
