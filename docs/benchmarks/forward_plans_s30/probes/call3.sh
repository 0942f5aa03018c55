source .device/setup.sh > .setup.log; export PYTHONPATH=$PWD:$PYTHONPATH; bash tools/benchmarks/speed_targets.sh $OUT/speed_targets
