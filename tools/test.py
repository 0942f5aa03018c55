"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]``.

Runs the config's test loop (nuScenes: NuScenesMetric through the official devkit; mAP, NDS and
per-class AP go to the log and to ``WORK_DIR/<timestamp>/<timestamp>.json``). The checkpoint, the test data and
the nuScenes version are checked before the Runner is built (exit status 2 with a message naming the problem);
testing never builds the training set.

``--amp`` runs the test loop under autocast (mmengine ``TestLoop(fp16=True)``, the same as
``--cfg-options test_cfg.fp16=True``): float16 on CUDA (``--amp-dtype bfloat16`` for bf16), bfloat16 on CPU. The model
keeps its fp32 islands: voxel encoder, sparse middle encoder and SECOND backbone run with autocast off, the detection
head runs in fp32 except its attention core (the decoder's ``cross_attn_dtype``); the image backbone/neck and the BEV
neck (SECONDFPN) run in reduced precision.

``--cuda-graph`` replays the model's static-shape parts from CUDA graphs at inference (the same as
``--cfg-options model.cuda_graph=True model.pts_bbox_head.cuda_graph=True``): the image backbone + neck on a side
stream while the sparse LiDAR branch runs, SECOND + SECONDFPN, and the head. No effect on CPU.
"""
import argparse
import os
import os.path as osp
import sys

import torch

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import projects.mmdet3d_plugin  # noqa: F401
from projects.mmdet3d_plugin.utils import (CfgOptionsAction, CheckpointFileError, DataFileError, check_checkpoint_file,
                                           load_config)
from projects.mmdet3d_plugin.utils.preflight import check_data


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a CMT 3D detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation results')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config keys, e.g. model.pts_bbox_head.bias_mode=exact')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed-precision inference: test_cfg.fp16=True (autocast: float16 on CUDA, bfloat16 on '
        'CPU; voxel/sparse encoders and SECOND stay fp32)')
    parser.add_argument(
        '--amp-dtype',
        choices=['float16', 'bfloat16'],
        default=None,
        help='CUDA autocast dtype for --amp (default float16; implies --amp; CPU autocast is bfloat16)')
    parser.add_argument(
        '--cuda-graph',
        action='store_true',
        help='inference CUDA graphs: model.cuda_graph=True (image branch, BEV backbone + neck) and '
        'model.pts_bbox_head.cuda_graph=True (head); CUDA only')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.amp_dtype is not None:
        args.amp = True
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def apply_amp(cfg, amp: bool) -> None:
    """In place: ``test_cfg.fp16 = True`` when ``amp`` (mmengine's TestLoop then runs each batch under autocast)."""
    if not amp:
        return
    test_cfg = cfg.get('test_cfg') or dict(type='TestLoop')
    test_cfg = dict(test_cfg)
    test_cfg['fp16'] = True
    cfg.test_cfg = test_cfg


def apply_cuda_graph(cfg, cuda_graph: bool) -> None:
    """In place: ``model.cuda_graph = True`` and ``model.pts_bbox_head.cuda_graph = True`` when ``cuda_graph``."""
    if not cuda_graph:
        return
    cfg.model.cuda_graph = True
    if cfg.model.get('pts_bbox_head') is not None:
        cfg.model.pts_bbox_head.cuda_graph = True


def set_cuda_autocast_dtype(amp_dtype) -> None:
    """mmengine's autocast takes the CUDA dtype from ``torch.get_autocast_gpu_dtype()`` (default float16)."""
    if amp_dtype is None or not torch.cuda.is_available():
        return
    dtype = getattr(torch, amp_dtype)
    if hasattr(torch, 'set_autocast_dtype'):
        torch.set_autocast_dtype('cuda', dtype)
    else:  # torch < 2.4
        torch.set_autocast_gpu_dtype(dtype)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f'Checkpoint {args.checkpoint!r} does not exist')
        cfg.launcher = args.launcher
        apply_amp(cfg, args.amp)
        apply_cuda_graph(cfg, args.cuda_graph)
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
    if args.amp:
        set_cuda_autocast_dtype(args.amp_dtype)
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
        dtype = (args.amp_dtype or 'float16') if device == 'cuda' else 'bfloat16'
        runner.logger.info(f'test.py --amp: test loop under {device} autocast ({dtype}); voxel/sparse encoders, '
                           'SECOND and the head outside its attention core stay fp32')
    runner.test()
    return 0


if __name__ == '__main__':
    sys.exit(main())
