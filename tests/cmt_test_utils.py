"""Helpers of the CMT model tests: build configs' models, make synthetic batches."""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config

import projects.mmdet3d_plugin  # noqa: F401  (registers the modules)
from mmdet3d.registry import MODELS
from mmdet3d.utils import register_all_modules
from projects.mmdet3d_plugin.models.synthetic_inputs import synthetic_batch

register_all_modules(init_default_scope=True)
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = {
    'fusion': 'projects/configs/demo/cmt_demo_fusion_pillar_r18.py',
    'lidar': 'projects/configs/demo/cmt_demo_lidar_pillar.py',
    'camera': 'projects/configs/demo/cmt_demo_camera_r18.py',
}


def load_cfg(path: str) -> Config:
    return Config.fromfile(osp.join(ROOT, path))


def random_voxels(sparse_shape, n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(M, 4) int32 unique (batch, z, y, x) voxel coordinates inside ``sparse_shape`` (z, y, x), M <= n: the
    sparse middle encoders' input coordinates."""
    coors = torch.stack([torch.randint(0, batch_size, (n, ), generator=generator)] +
                        [torch.randint(0, s, (n, ), generator=generator) for s in sparse_shape], 1)
    return coors.unique(dim=0).int()


def build_model(path: str,
                seed: int = 0,
                no_dropout: bool = False,
                model_overrides: Optional[dict] = None,
                **head_overrides):
    """Model of a config (weights initialised with ``seed``); ``no_dropout`` also removes GridMask;
    ``model_overrides`` update ``cfg.model`` (the detector's arguments), ``head_overrides`` its ``pts_bbox_head``."""
    cfg = load_cfg(path)
    cfg.model.update(model_overrides or {})
    cfg.model.pts_bbox_head.update(head_overrides)
    if no_dropout:
        cfg.model.grid_mask = None
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if no_dropout:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
            elif isinstance(m, torch.nn.MultiheadAttention):
                m.dropout = 0.0
            if hasattr(m, 'attn_drop') and isinstance(m.attn_drop, float):
                m.attn_drop = 0.0
    return model


def demo_batch(model, modality: str, **kwargs) -> dict:
    """Preprocessed synthetic batch for a demo model (2 cameras of 64x160 unless overridden)."""
    pc = model.pts_bbox_head.pc_range.tolist()
    kwargs.setdefault('batch_size', 2)
    batch = synthetic_batch(pc_range=pc, with_points=modality != 'camera', with_img=modality != 'lidar', **kwargs)
    return model.data_preprocessor(batch, training=model.training)
