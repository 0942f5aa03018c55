"""Train a detector: ``python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]] [--check-data]
[--cfg-options k=v ...]``.

mmdet3d 1.x style on mmengine's Runner. The plugin is imported here, so a config without
``custom_imports`` works too. Distributed: ``tools/dist_train.sh CONFIG GPUS`` (torchrun) or
``tools/slurm_train.sh``; they pass ``--launcher``.

Before the Runner is built the data, the nuScenes version and the checkpoint to resume are checked
(``projects/mmdet3d_plugin/utils/preflight.py``). Exit status: 0 done, 2 bad input (config, data, checkpoint),
3 non-finite loss or gradient norm (NonFiniteLossHook), 128 + N stopped by signal N after saving a checkpoint
(SignalCheckpointHook: SIGTERM 143, SIGUSR1 138).
"""
import argparse
import gc
import logging
import os
import os.path as osp
import sys

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import projects.mmdet3d_plugin  # noqa: F401  (registers the plugin's modules)
from projects.mmdet3d_plugin.engine import NonFiniteLossError, TrainingInterrupted
from projects.mmdet3d_plugin.utils import CfgOptionsAction, CheckpointFileError, DataFileError, load_config
from projects.mmdet3d_plugin.utils.preflight import check_data, prepare_resume


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a CMT 3D detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic mixed precision (AmpOptimWrapper, dynamic loss scale)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr linearly with the total batch size (auto_scale_lr in the config)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir')
    parser.add_argument('--tensorboard', action='store_true', help='also log to TensorBoard')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config keys, e.g. model.pts_bbox_head.bias_mode=exact '
        '"optim_wrapper.optimizer.betas=(0.9,0.99)" train_cfg.max_epochs=2 '
        '"model.img_backbone.init_cfg=dict(type=\'Pretrained\', checkpoint=\'ckpts/x.pth\')" '
        '(a dict value replaces the key)')
    parser.add_argument(
        '--check-data',
        action='store_true',
        help='check every sample file of the train/val sets (present, LiDAR size, complete JPEG) '
        'and exit (0: all good, 2: the first bad file is named)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args) -> Config:
    """Load the config and apply the command-line options to it."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config.', logger='current', level=logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError('--auto-scale-lr needs `auto_scale_lr = dict(enable=..., base_batch_size=N)` in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume checkpoint {args.resume!r} does not exist')
        cfg.resume = True
        cfg.load_from = args.resume

    if args.tensorboard:
        backends = cfg.visualizer.setdefault('vis_backends', [dict(type='LocalVisBackend')])
        if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
            backends.append(dict(type='TensorboardVisBackend'))
    return cfg


def use_gloo_group_and_ddp(cfg: Config, device_ids) -> None:
    """Create the gloo process group here (the Runner then skips mmengine's ``init_dist``) and give DDP
    ``device_ids`` (None for CPU processes), keeping the config's other wrapper options."""
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel',
        device_ids=device_ids,
        **{
            k: v
            for k, v in cfg.get('model_wrapper_cfg', {}).items() if k not in ('type', 'device_ids')
        })


def use_cpu_distributed(cfg: Config) -> None:
    """Run a distributed launch on CPU processes (gloo), e.g. ``tools/dist_train.sh CONFIG 2`` without GPUs.

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and its DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail for CPU processes. So the process group is created here with
    gloo (the Runner then skips ``init_dist``) and DDP gets ``device_ids=None``. SyncBN has no CPU kernel:
    configs with SyncBN must override it for CPU runs.
    """
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        print_log(
            f'no CUDA device: using the gloo backend instead of {backend!r}', logger='current', level=logging.WARNING)
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    use_gloo_group_and_ddp(cfg, device_ids=None)


def ranks_share_gpus(launcher: str) -> bool:
    """True for a distributed launch with more ranks on this node than GPUs (e.g. 2 ranks, one GPU)."""
    return (launcher != 'none' and torch.cuda.is_available()
            and int(os.environ.get('LOCAL_WORLD_SIZE', 1)) > torch.cuda.device_count())


def bind_rank_to_shared_gpu() -> int:
    """Put this rank on GPU ``LOCAL_RANK % num_gpus``; call before anything logs. Returns the device index.

    mmengine's logger names a rank's log file after ``CUDA_VISIBLE_DEVICES[LOCAL_RANK]``, which has no entry for
    the ranks beyond the GPU count (IndexError when the first logger is made, e.g. by a registry lookup);
    changing the variable would change torch's device count, so the lookup is replaced instead.
    """
    device = int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()
    torch.cuda.set_device(device)
    from mmengine.logging import logger as mmengine_logger
    mmengine_logger._get_device_id = lambda: device
    return device


def use_shared_gpu_distributed(cfg: Config, device: int) -> None:
    """Run more ranks on this node than it has GPUs (gloo), e.g. ``tools/dist_train.sh CONFIG 2`` on one GPU.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device(LOCAL_RANK)``, which fails for a rank without a GPU
    of its own, and NCCL refuses two ranks on one device. So the process group is created here with gloo, rank
    ``r`` uses GPU ``device`` (``bind_rank_to_shared_gpu``) and DDP gets that device. Meant for checking the
    distributed path on a machine with fewer GPUs than ranks; real multi-GPU runs keep NCCL and one GPU per rank.
    """
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'nccl')
    if backend != 'gloo':
        raise ValueError(f'{os.environ.get("LOCAL_WORLD_SIZE")} ranks share {torch.cuda.device_count()} GPU(s) '
                         f'on this node, which NCCL refuses (env_cfg.dist_cfg.backend={backend!r}); pass '
                         f'--cfg-options env_cfg.dist_cfg.backend=gloo, or start one rank per GPU')
    use_gloo_group_and_ddp(cfg, device_ids=[device])


def close_process_group() -> None:
    """After a finished run, once the caller has dropped its runner: collect what still holds the process group (the
    DDP-wrapped model outlives the runner in reference cycles), wait for every rank, then tear the group down
    (PyTorch asks for it). A gloo group whose last holder is freed while the interpreter exits can abort a process
    whose training succeeded (exit status -6, "terminate called without an active exception")."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def main(argv=None):
    args = parse_args(argv)
    shared_gpu = bind_rank_to_shared_gpu() if ranks_share_gpus(args.launcher) else None
    try:
        cfg = build_config(args)
        loaders = ('train_dataloader', 'val_dataloader') if cfg.get('val_cfg') else ('train_dataloader', )
        checked = check_data(cfg, loaders, full_scan=args.check_data)
        if args.check_data:
            print(f'data check passed: {checked} sensor files of {", ".join(loaders)}')
            return 0
        prepare_resume(cfg)
    except (DataFileError, FileNotFoundError, KeyError, CheckpointFileError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.launcher != 'none' and not torch.cuda.is_available():
        use_cpu_distributed(cfg)
    elif shared_gpu is not None:
        try:
            use_shared_gpu_distributed(cfg, shared_gpu)
        except ValueError as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    try:
        runner.train()
    except NonFiniteLossError as err:
        print(f'error: {err}', file=sys.stderr)
        return 3
    except TrainingInterrupted as err:
        print(str(err), file=sys.stderr)
        return 128 + err.signum
    del runner  # with it the DDP model, which holds the process group: freed before the group is torn down
    close_process_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
