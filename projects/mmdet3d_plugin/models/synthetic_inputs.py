"""Synthetic detector inputs (camera rig, points, GT boxes) and head predictions for tests and ``tools/benchmarks/``.

The batch has the form ``Det3DDataPreprocessor`` consumes: ``dict(inputs=dict(points=[(P, 5)], img=[(N, 3, H, W)]),
data_samples=[Det3DDataSample])`` with ``metainfo['lidar2img']`` (N 4x4 arrays) and ``gt_instances_3d``.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.structures import InstanceData

from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes
from ..attention.testing import camera_rig  # noqa: F401  (N, 4, 4) lidar2img; re-exported for tests


def random_boxes(num: int,
                 pc_range: Sequence[float],
                 generator: Optional[torch.Generator] = None,
                 margin: float = 4.0) -> LiDARInstance3DBoxes:
    """``num`` random boxes (bottom centre, with velocity) whose centres lie ``margin`` m inside pc_range."""
    g = generator
    lo = torch.tensor(pc_range[:2]) + margin
    hi = torch.tensor(pc_range[3:5]) - margin
    xy = lo + (hi - lo) * torch.rand(num, 2, generator=g)
    z = pc_range[2] + 2.0 + torch.rand(num, 1, generator=g)
    size = torch.tensor([0.5, 0.5, 1.0]) + torch.rand(num, 3, generator=g) * torch.tensor([4.0, 2.0, 2.0])
    yaw = (torch.rand(num, 1, generator=g) * 2 - 1) * math.pi
    vel = torch.randn(num, 2, generator=g)
    return LiDARInstance3DBoxes(torch.cat([xy, z, size, yaw, vel], 1), box_dim=9)


def random_points(num: int, pc_range: Sequence[float], generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(num, 5) points (x, y, z, intensity, sweep time) uniform inside pc_range."""
    rng = torch.tensor(pc_range, dtype=torch.float32)
    xyz = rng[:3] + (rng[3:] - rng[:3]) * torch.rand(num, 3, generator=generator)
    return torch.cat(
        [xyz, torch.rand(num, 1, generator=generator) * 255,
         torch.rand(num, 1, generator=generator) * 0.5], 1)


def random_head_predictions(num_layers: int,
                            batch: int,
                            num_queries: int,
                            num_dn: int,
                            num_classes: int,
                            generator: Optional[torch.Generator] = None) -> dict:
    """Random outputs of every decoder layer in ``CmtHead.forward``'s layout, the input of ``loss_by_feat``:
    ``cls_scores`` (L, B, Q, K) logits, ``bbox_preds`` (L, B, Q, 10) codes, ``dn_cls_scores`` / ``dn_bbox_preds``
    (L, B, P, .) of the denoising queries, standard normal."""
    shapes = dict(
        cls_scores=(num_queries, num_classes),
        bbox_preds=(num_queries, 10),
        dn_cls_scores=(num_dn, num_classes),
        dn_bbox_preds=(num_dn, 10))
    return {k: torch.randn(num_layers, batch, *shape, generator=generator) for k, shape in shapes.items()}


def synthetic_batch(batch_size: int,
                    pc_range: Sequence[float],
                    num_gt: Union[int, Sequence[int]] = 5,
                    num_classes: int = 10,
                    num_points: int = 2000,
                    num_cams: int = 2,
                    img_hw: Tuple[int, int] = (64, 160),
                    with_points: bool = True,
                    with_img: bool = True,
                    seed: int = 0,
                    device: Union[str, torch.device] = 'cpu') -> dict:
    """A random batch. ``num_gt`` per sample (int or list, 0 allowed); images are 0..255 floats."""
    g = torch.Generator().manual_seed(seed)
    counts = [num_gt] * batch_size if isinstance(num_gt, int) else list(num_gt)
    rig = camera_rig(num_cams, img_hw)
    points, imgs, samples = [], [], []
    for b in range(batch_size):
        sample = Det3DDataSample()
        meta = dict(box_type_3d=LiDARInstance3DBoxes, sample_idx=b)
        if with_img:
            meta.update(lidar2img=list(rig), img_shape=img_hw, pad_shape=img_hw, num_views=num_cams)
            imgs.append((torch.rand(num_cams, 3, *img_hw, generator=g) * 255).to(device))
        if with_points:
            points.append(random_points(num_points, pc_range, g).to(device))
        sample.set_metainfo(meta)
        gt = InstanceData()
        gt.bboxes_3d = random_boxes(counts[b], pc_range, g).to(device)
        gt.labels_3d = torch.randint(0, num_classes, (counts[b], ), generator=g).to(device)
        sample.gt_instances_3d = gt
        samples.append(sample)
    inputs = {}
    if with_points:
        inputs['points'] = points
    if with_img:
        inputs['img'] = imgs
    return dict(inputs=inputs, data_samples=samples)
