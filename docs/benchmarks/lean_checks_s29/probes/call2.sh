# call 2 (session 29): attention GPU tests, host pieces, attention benchmark of HEAD (scratch/before) and the working
# tree alternating, then issue #12's speed script on the working tree
nvidia-smi --query-gpu=name,driver_version --format=csv; lscpu | grep -E "^Model name|^CPU\(s\)"; grep "device setup" .setup.log
export PYTHONPATH=$PWD:$PYTHONPATH
timeout 120 python -m pytest -q -m gpu tests/attention -p no:cacheprovider > $OUT/gpu_tests_attention.log 2>&1; tail -2 $OUT/gpu_tests_attention.log
timeout 60 python scratch/host_pieces_s29.py > $OUT/host_pieces.txt 2>&1; grep -v Warning $OUT/host_pieces.txt | grep -v '^ ' 
A=(--shapes voxel0100 --dtypes bfloat16 --phases train infer --rows triton nobias --no-reference --warmup 5 --iters 20)
run_before() { (cd scratch/before && PYTHONPATH=$PWD:$PYTHONPATH python tools/benchmarks/$1 "${@:2}"); }
for i in 1 2; do
  if [ $i = 1 ]; then run_before benchmark_attention.py "${A[@]}" --out $OUT/bench_b$i > $OUT/bench_b$i.log 2>&1; fi
  python tools/benchmarks/benchmark_attention.py "${A[@]}" --out $OUT/bench_a$i > $OUT/bench_a$i.log 2>&1
  if [ $i = 2 ]; then run_before benchmark_attention.py "${A[@]}" --out $OUT/bench_b$i > $OUT/bench_b$i.log 2>&1; fi
done
for f in b1 a1 a2 b2; do echo "== $f"; grep -E "^\| (triton|nobias)" $OUT/bench_$f/attention_benchmark.md | cut -d'|' -f2-9; done
timeout 260 bash tools/benchmarks/speed_targets.sh $OUT/speed_targets_without_spconv > $OUT/speed_targets.log 2>&1; tail -16 $OUT/speed_targets/speed_targets.md
cd $OUT && tar czf results.tgz bench_* speed_targets* host_pieces.txt gpu_tests_attention.log && rm -rf bench_?? speed_targets
