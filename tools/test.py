"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]``.

Runs the config's test loop (nuScenes: NuScenesMetric through the official devkit; mAP, NDS and
per-class AP go to the log and to ``WORK_DIR/<timestamp>/<timestamp>.json``). The checkpoint, the test data and
the nuScenes version are checked before the Runner is built (exit status 2 with a message naming the problem);
testing never builds the training set.
"""
import argparse
import os
import os.path as osp
import sys

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import projects.mmdet3d_plugin  # noqa: E402,F401
from projects.mmdet3d_plugin.utils import (CfgOptionsAction, CheckpointFileError, DataFileError,  # noqa: E402
                                           check_checkpoint_file, load_config)
from projects.mmdet3d_plugin.utils.preflight import check_data  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a CMT 3D detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation results')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config keys, e.g. model.pts_bbox_head.bias_mode=exact')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f'Checkpoint {args.checkpoint!r} does not exist')
        cfg.launcher = args.launcher
        check_checkpoint_file(args.checkpoint)
        check_data(cfg, ('test_dataloader', ))
    except (DataFileError, FileNotFoundError, KeyError, CheckpointFileError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.test()
    return 0


if __name__ == '__main__':
    sys.exit(main())
