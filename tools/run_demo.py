"""The README's main job: make a synthetic nuScenes-format set (if absent), train the demo CMT config on it,
evaluate with the official nuScenes metric, and print where the log, checkpoint and memory summary are.

    python tools/run_demo.py [--config CFG] [--data DIR] [--scenes N] [--work-dir DIR] [--iters N]
                             [--cfg-options k=v ...]

Runs on the GPU when one is visible, else on the CPU (the demo config's LiDAR branch is pillar-based, so it
trains on CPU). ``--iters`` switches to an iteration-based schedule of that length; the default trains one
epoch of the demo config (a few minutes on 2 CPU cores).
"""
import argparse
import json
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import projects.mmdet3d_plugin  # noqa: E402,F401
from projects.mmdet3d_plugin.datasets.config_utils import retarget_data_root  # noqa: E402
from projects.mmdet3d_plugin.datasets.synthetic.build import build_synthetic_dataset  # noqa: E402
from projects.mmdet3d_plugin.utils import CfgOptionsAction, apply_cfg_options  # noqa: E402

DEMO_CONFIG = 'projects/configs/demo/cmt_demo_fusion_pillar_r18.py'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default=osp.join(ROOT, DEMO_CONFIG))
    p.add_argument('--data', default=osp.join(ROOT, 'data', 'nuscenes-synthetic'),
                   help='synthetic set root (generated when absent)')
    p.add_argument('--scenes', type=int, default=10, help='scenes to generate (<= 10: v1.0-mini split names)')
    p.add_argument('--samples-per-scene', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    p.add_argument('--iters', type=int, default=None, help='train this many iterations instead of one epoch')
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, help='config overrides, as in tools/train.py')
    return p.parse_args(argv)


def use_iteration_schedule(cfg: Config, max_iters: int, ckpt_interval: int) -> Config:
    """In place: an iteration-based loop of ``max_iters`` without validation, a checkpoint every
    ``ckpt_interval`` iterations and a per-iteration log (unsmoothed, so scalars.json holds each step's loss)."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=ckpt_interval,
                                        max_keep_ckpts=3, backend_args=dict(backend='atomic_local'))
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
    return cfg


def demo_config(args) -> Config:
    """The demo config pointed at ``args.data``, with a short schedule."""
    cfg = Config.fromfile(args.config)
    retarget_data_root(cfg, osp.abspath(args.data))
    cfg.work_dir = args.work_dir
    if args.iters:
        use_iteration_schedule(cfg, args.iters, ckpt_interval=args.iters)
        cfg.param_scheduler = []
    else:
        cfg.train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=1, val_interval=2)
    apply_cfg_options(cfg, args.cfg_options)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    build_synthetic_dataset(args.data, args.scenes, seed=args.seed, samples_per_scene=args.samples_per_scene)
    t_data = time.time() - t0
    runner = Runner.from_cfg(demo_config(args))
    runner.train()
    t_train = time.time() - t0 - t_data
    metrics = runner.test()
    t_test = time.time() - t0 - t_data - t_train

    keys = [k for k in metrics if k.endswith('/mAP') or k.endswith('/NDS')]
    last = osp.join(args.work_dir, 'last_checkpoint')
    ckpt = open(last).read().strip() if osp.isfile(last) else None
    summary = dict(
        device=str(next(runner.model.parameters()).device),
        seconds=dict(data=round(t_data, 1), train=round(t_train, 1), test=round(t_test, 1)),
        metrics={k.split('/')[-1]: metrics[k] for k in keys},
        log=osp.join(runner.log_dir, f'{runner.timestamp}.log'),
        checkpoint=ckpt,
        memory_summary=osp.join(args.work_dir, 'memory_summary.json'),
        scalars=osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
    with open(osp.join(args.work_dir, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('\n== demo done ==')
    print(f"device {summary['device']}; data {t_data:.0f} s, train {t_train:.0f} s, evaluation {t_test:.0f} s")
    print('official nuScenes metric on the config\'s test set (test_evaluator): ' +
          ', '.join(f'{k} {v:.4f}' for k, v in summary['metrics'].items()))
    for what in ('log', 'checkpoint', 'memory_summary', 'scalars'):
        print(f'{what:>15}: {summary[what]}')
    print(f"{'summary':>15}: {osp.join(args.work_dir, 'demo_summary.json')}")
    print(f"plot memory/loss: python tools/plot_memory.py {args.work_dir} --out {args.work_dir}/memory.png")
    return summary


if __name__ == '__main__':
    main()
