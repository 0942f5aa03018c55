"""Shared by the bad-input sweep: a private copy of the synthetic set to damage, the demo config pointed at it
(written to a file, as the tools take it), and a toy mmengine Runner for the training-loop hooks."""
import os
import os.path as osp
import shutil

import mmengine
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'projects/configs/demo/cmt_demo_fusion_pillar_r18.py')
FULL = osp.join(ROOT, 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')


def copy_root(synthetic_root, tmp_path, name='nus') -> str:
    """A copy of the session's synthetic set that a test may damage."""
    dst = str(tmp_path / name)
    shutil.copytree(synthetic_root, dst)
    return dst


def load_config(data_root, path=DEMO) -> Config:
    import projects.mmdet3d_plugin  # noqa: F401
    from projects.mmdet3d_plugin.datasets.config_utils import retarget_data_root
    return retarget_data_root(Config.fromfile(path), data_root)


def config_file(tmp_path, cfg: Config, name='cfg') -> str:
    """The config as a file for the tools (JSON: dumping as .py formats it with yapf, seconds per call)."""
    path = str(tmp_path / f'{name}.json')
    cfg.dump(path)
    return path


def iteration_config(cfg: Config, max_iters: int, ckpt_interval: int) -> Config:
    """In place: tools/run_demo.py's iteration loop, no validation."""
    from projects.mmdet3d_plugin.utils.schedules import use_iteration_schedule
    use_iteration_schedule(cfg, max_iters, ckpt_interval)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    return cfg


def infos(root, split='val'):
    return mmengine.load(osp.join(root, f'nuscenes_infos_{split}.pkl'))['data_list']


def lidar_file(root, info) -> str:
    return osp.join(root, 'samples', 'LIDAR_TOP', info['lidar_points']['lidar_path'])


def camera_file(root, info, cam='CAM_FRONT') -> str:
    return osp.join(root, 'samples', cam, info['images'][cam]['img_path'])


def truncate(path, keep_bytes):
    with open(path, 'r+b') as f:
        f.truncate(keep_bytes)
    assert os.path.getsize(path) == keep_bytes


# ------------------------------------------------------------------ toy Runner
class IndexDataset(Dataset):
    """Sample i is the float i; ``nan_at`` makes that sample NaN."""

    def __init__(self, n=10, nan_at=None):
        self.n, self.nan_at = n, nan_at
        self.metainfo = {}

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float('nan') if i == self.nan_at else float(i)]), idx=i)


class ToyModel(BaseModel):
    """loss = mean((w * x - 1)^2); records the sample indices of every training batch in ``seen``."""

    def __init__(self, seen=None):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.seen = seen if seen is not None else []

    def forward(self, inputs, idx=None, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)
        if mode == 'loss':
            self.seen.append([int(i) for i in idx])
            return dict(loss=((self.w * x - 1)**2).mean())
        return self.w * x


def toy_runner(work_dir,
               model,
               dataset,
               loop,
               custom_hooks=(),
               checkpoint=None,
               resume=False,
               seed=1,
               optim_wrapper=None):
    from mmengine.runner import Runner

    import projects.mmdet3d_plugin  # noqa: F401  (registers the hooks and loops)
    return Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            num_workers=0,
            collate_fn=dict(type='pseudo_collate')),
        train_cfg=loop,
        optim_wrapper=optim_wrapper or dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=checkpoint or dict(type='CheckpointHook', interval=1000),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(custom_hooks),
        resume=resume,
        randomness=dict(seed=seed),
        default_scope='mmdet3d')
