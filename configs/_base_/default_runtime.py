# Default runtime shared by every config (mmengine Runner).
default_scope = 'mmdet3d'
# Importing the plugin registers CMT's modules (attention, models, transforms, hooks).
custom_imports = dict(imports=['projects.mmdet3d_plugin'], allow_failed_imports=False)

log_interval = 50
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=log_interval),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # keeps the last 3 checkpoints; older ones are removed only after a newer one was written. `atomic_local`
    # (the plugin's file backend) writes each file to a temporary name and renames it: a save interrupted
    # half-way never replaces a good checkpoint.
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True, backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='Det3DVisualizationHook'),
    # stop at the first non-finite loss / grad norm, before a checkpoint of it is saved (exit status 3)
    non_finite=dict(type='NonFiniteLossHook'),
    # SIGTERM / SIGUSR1 (slurm preemption): checkpoint after the current iteration, then exit 128 + signal
    preemption=dict(type='SignalCheckpointHook'))
# GPU memory (CPU: process RSS) per rank in the text log, JSON scalars and TensorBoard; summary in work_dir.
# IterSeedHook reseeds torch per iteration so that --resume repeats the uninterrupted loss curve.
custom_hooks = [dict(type='GPUMemoryHook'), dict(type='IterSeedHook')]  # memory: at the logger's interval

env_cfg = dict(
    cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='nccl'))

log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False

# TensorBoard: add dict(type='TensorboardVisBackend') here, or pass `--tensorboard` to tools/train.py.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
