"""cProfile N training steps of a config on preloaded batches (data loading excluded), sorted by own time.

    python tools/profile_train_step.py CONFIG [--bias-mode sdpa] [--attn-dtype bfloat16] [--steps 10] [--top 18]

Prints the mean step time and the functions that take it; used to find what dominates a CMT step.
"""
import argparse
import cProfile
import os.path as osp
import pstats
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import projects.mmdet3d_plugin  # noqa: E402,F401


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('--bias-mode', default=None)
    p.add_argument('--attn-dtype', default=None, choices=['float32', 'float16', 'bfloat16'])
    p.add_argument('--steps', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--top', type=int, default=18)
    p.add_argument('--work-dir', default='/tmp/profile_train_step')
    args = p.parse_args(argv)

    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    if args.bias_mode:
        cfg.model.pts_bbox_head.bias_mode = args.bias_mode
    if args.attn_dtype:
        cfg.model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_dtype = args.attn_dtype
    runner = Runner.from_cfg(cfg)
    optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    model = runner.model.train()
    loader = iter(runner.build_dataloader(cfg.train_dataloader))
    batches = [next(loader) for _ in range(args.warmup + args.steps)]
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for b in batches[:args.warmup]:
        model.train_step(b, optim_wrapper)
    sync()
    prof = cProfile.Profile()
    prof.enable()
    t0 = time.time()
    for b in batches[args.warmup:]:
        model.train_step(b, optim_wrapper)
    sync()
    prof.disable()
    print(f'mean step {(time.time() - t0) / args.steps:.3f} s over {args.steps} steps (data loading excluded)')
    pstats.Stats(prof).sort_stats('tottime').print_stats(args.top)


if __name__ == '__main__':
    main()
