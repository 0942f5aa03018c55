# Session 27 final device call, run as: source .device/setup.sh > .setup.log; bash scratch/call2.sh
# scratch/before held session 26's code: git archive 8dbc05e projects tools | tar x -C scratch/before
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; lscpu | grep -E "^Model name"
mkdir -p $OUT/r
T="--shapes voxel0100 --dtypes bfloat16 --no-reference"
run() { timeout 60 python "$@" 2>&1 | grep -E "^\| (triton|nobias)|^## " ; }
echo "== before (HEAD 8dbc05e)"; run scratch/before/tools/benchmarks/benchmark_attention.py $T --phases train --rows triton nobias --out $OUT/r/b1
echo "== after"; run tools/benchmarks/benchmark_attention.py $T --phases train infer --rows triton triton-serial-bwd nobias --out $OUT/r/a1
echo "== after, reversed"; run tools/benchmarks/benchmark_attention.py $T --phases train --rows nobias triton-serial-bwd triton --out $OUT/r/a2
echo "== before (HEAD 8dbc05e)"; run scratch/before/tools/benchmarks/benchmark_attention.py $T --phases train --rows nobias triton --out $OUT/r/b2
timeout 30 python scratch/launch_timeline.py --events 2>&1 | tail -2
timeout 400 python -m pytest tests -n 12 -q -p no:cacheprovider > $OUT/r/suite.log 2>&1; echo "suite rc $?"; tail -4 $OUT/r/suite.log
for d in a1 a2 b1 b2; do cp $OUT/r/$d/attention_benchmark.json $OUT/r/$d.json 2>/dev/null; cp $OUT/r/$d/attention_benchmark.md $OUT/r/$d.md 2>/dev/null; rm -rf $OUT/r/$d; done
tar czf $OUT/r.tgz -C $OUT r && rm -rf $OUT/r
