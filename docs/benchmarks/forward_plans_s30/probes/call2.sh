# call 2 (session 30): the attention benchmark of HEAD (scratch/before) and the working tree alternating (three
# pairs), then the whole suite on the GPU with spconv
nvidia-smi --query-gpu=name,driver_version --format=csv; lscpu | grep -E "^Model name|^CPU\(s\)"; grep "device setup" .setup.log
export PYTHONPATH=$PWD:$PYTHONPATH
run_before() { (cd scratch/before && PYTHONPATH=$PWD:$PYTHONPATH python tools/benchmarks/$1 "${@:2}"); }
A=(--shapes voxel0100 --dtypes bfloat16 --phases train infer --rows triton nobias --no-reference --warmup 5 --iters 20)
for i in 1 2 3; do
  if [ $i != 2 ]; then run_before benchmark_attention.py "${A[@]}" --out $OUT/bench_b$i > $OUT/bench_b$i.log 2>&1; fi
  python tools/benchmarks/benchmark_attention.py "${A[@]}" --out $OUT/bench_a$i > $OUT/bench_a$i.log 2>&1
  if [ $i = 2 ]; then run_before benchmark_attention.py "${A[@]}" --out $OUT/bench_b$i > $OUT/bench_b$i.log 2>&1; fi
done
for f in b1 a1 a2 b2 b3 a3; do echo "== $f"; grep -E "^\| (triton|nobias)" $OUT/bench_$f/attention_benchmark.md | cut -d'|' -f2-9; done
(cd $OUT && tar czf bench.tgz bench_* && rm -rf bench_??)
timeout 390 python -m pytest tests -n 14 -q -p no:cacheprovider > $OUT/whole_suite_gpu.log 2>&1; echo "suite rc $?"; tail -4 $OUT/whole_suite_gpu.log
