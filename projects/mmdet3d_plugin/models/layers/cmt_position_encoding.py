"""CMT's coordinate encodings: BEV sine encoding (``pos2embed``), camera-ray points, camera matrices.

Units: metres in the LiDAR frame unless a name says ``norm`` (normalised to ``pc_range``, i.e. [0, 1] inside).
"""
import math
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


def pos2embed(pos: Tensor, num_pos_feats: int = 128) -> Tensor:
    """CMT's sine encoding of normalised BEV coordinates.

    pos (..., 2) = (x, y) in [0, 1] -> (..., 2 * num_pos_feats) = cat(enc(y), enc(x)). The frequency divisor is
    ``2 * (i // 2) / num_pos_feats + 1`` (in [1, 2), not DETR's ``10000^(2i/d)``), kept for parity with CMT.
    """
    pos = pos * (2 * math.pi)
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=pos.device)
    dim_t = 2 * torch.div(dim_t, 2, rounding_mode='floor') / num_pos_feats + 1

    def enc(coord: Tensor) -> Tensor:
        x = coord[..., None] / dim_t
        return torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), dim=-1).flatten(-2)

    return torch.cat((enc(pos[..., 1]), enc(pos[..., 0])), dim=-1)


def normalize_points(points: Tensor, pc_range: Tensor) -> Tensor:
    """(..., 3) metres -> (..., 3) in [0, 1] inside ``pc_range`` (6,) (not clamped)."""
    return (points - pc_range[:3]) / (pc_range[3:] - pc_range[:3])


def denormalize_points(points_norm: Tensor, pc_range: Tensor) -> Tensor:
    """(..., 3) in [0, 1] -> (..., 3) metres."""
    return points_norm * (pc_range[3:] - pc_range[:3]) + pc_range[:3]


def depth_bins(num_bins: int, max_depth: float, min_depth: float = 1.0, device=None) -> Tensor:
    """CMT's uniform camera depths (num_bins,) metres: ``min + i * (max - min) / num_bins``."""
    i = torch.arange(num_bins, dtype=torch.float32, device=device)
    return min_depth + i * (max_depth - min_depth) / num_bins


def pixel_centres(feat_hw: Tuple[int, int], img_hw: Tuple[int, int], device=None, offset: float = 0.5) -> Tensor:
    """(h, w, 2) pixel (u, v) of each stride-s feature cell: ``u = (j + offset) * W / w``, ``v = (i + offset) * H / h``.

    ``offset=0.5`` (default) is the cell centre, as ``camera_key_lines`` uses; ``offset=0`` the top-left corner,
    CMT's ``_rv_pe`` convention (``arange(W) * pad_w / W``).
    """
    h, w = feat_hw
    H, W = img_hw
    v = (torch.arange(h, dtype=torch.float32, device=device) + offset) * (H / h)
    u = (torch.arange(w, dtype=torch.float32, device=device) + offset) * (W / w)
    vv, uu = torch.meshgrid(v, u, indexing='ij')
    return torch.stack((uu, vv), dim=-1)


def lift_pixels(uv: Tensor, depths: Tensor, img2lidar: Tensor) -> Tensor:
    """Back-project pixels at given depths.

    uv (B, N, P, 2) pixels, depths (D,) metres, img2lidar (B, N, 4, 4) -> (B, N, P, D, 3) metres.
    """
    d = depths.view(1, 1, 1, -1, 1)
    uvd = torch.cat([uv[..., None, :] * d, d.expand(*uv.shape[:3], -1, 1)], dim=-1)  # (B, N, P, D, 3)
    homo = torch.cat([uvd, torch.ones_like(uvd[..., :1])], dim=-1)
    pts = torch.einsum('bnij,bnpdj->bnpdi', img2lidar, homo)
    return pts[..., :3]


def project_points(points: Tensor, lidar2img: Tensor, eps: float = 1e-5) -> Tuple[Tensor, Tensor]:
    """points (B, Q, 3) metres, lidar2img (B, N, 4, 4) -> uv (B, N, Q, 2) pixels, depth (B, N, Q)."""
    homo = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    cam = torch.einsum('bnij,bqj->bnqi', lidar2img, homo)
    depth = cam[..., 2]
    uv = cam[..., :2] / depth.detach().clamp(min=eps)[..., None]
    return uv, depth


def _to_4x4(mat, name: str, index: int) -> np.ndarray:
    mat = np.asarray(mat, dtype=np.float64)
    if mat.shape == (3, 3):
        out = np.eye(4)
        out[:3, :3] = mat
        return out
    if mat.shape in ((3, 4), (4, 4)):
        out = np.eye(4)
        out[:mat.shape[0]] = mat
        return out
    raise ValueError(f'metainfo[{name!r}][{index}] must be 3x3, 3x4 or 4x4, got shape {mat.shape}')


def lidar2img_from_metas(batch_input_metas: Sequence[dict], device=None) -> Tensor:
    """(B, N, 4, 4) float32 LiDAR -> image-pixel matrices from metainfo.

    Uses ``lidar2img`` (list of N 4x4) when present, else ``cam2img @ lidar2cam`` (cam2img 3x3 or 4x4).
    """
    mats: List[np.ndarray] = []
    for b, meta in enumerate(batch_input_metas):
        if 'lidar2img' in meta:
            cams = [_to_4x4(m, 'lidar2img', i) for i, m in enumerate(meta['lidar2img'])]
        elif 'cam2img' in meta and 'lidar2cam' in meta:
            cams = [
                _to_4x4(k, 'cam2img', i) @ _to_4x4(e, 'lidar2cam', i)
                for i, (k, e) in enumerate(zip(meta['cam2img'], meta['lidar2cam']))
            ]
        else:
            raise KeyError(f'sample {b}: metainfo needs "lidar2img" (list of N 4x4) or both "cam2img" and '
                           f'"lidar2cam" (lists of N 3x3/4x4) for the camera branch; keys: {sorted(meta)}')
        mats.append(np.stack(cams))
    if len({m.shape for m in mats}) != 1:
        raise ValueError(f'every sample needs the same number of cameras, got {[m.shape[0] for m in mats]}')
    return torch.as_tensor(np.stack(mats), dtype=torch.float32, device=device)
