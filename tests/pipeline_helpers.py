"""Helpers shared by the pipeline tests: config loading, pixel -> class by hue, visibility of box centres."""
import colorsys
import os.path as osp

import numpy as np
from mmengine.config import Config

from projects.mmdet3d_plugin.datasets import retarget_data_root
from projects.mmdet3d_plugin.datasets.nuscenes_layout import DETECTION_CLASSES

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE_CFG = osp.join(ROOT, 'configs', '_base_', 'datasets', 'nuscenes_cmt.py')


def load_cfg(data_root, path=BASE_CFG):
    return retarget_data_root(Config.fromfile(path), data_root)


def pixel_class(bgr):
    """Detection class whose palette hue (i/10 of the circle) is nearest the pixel's hue; None if grey."""
    b, g, r = (float(c) / 255.0 for c in bgr)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if s < 0.3 or v < 0.15:
        return None
    ref = np.arange(len(DETECTION_CLASSES)) / len(DETECTION_CLASSES)
    return DETECTION_CLASSES[int(np.argmin(np.abs((h - ref + 0.5) % 1.0 - 0.5)))]


def visible_centres(corners, centres, lidar2img, img_hw, min_size=12, margin=3):
    """Yield (box index, u, v) for boxes whose centre projection is in the image, the box is wholly in front of
    the camera, spans >= ``min_size`` px, and no nearer box's 2D extent contains that pixel (numpy, fp64)."""
    n = len(centres)
    hom = np.concatenate([corners, np.ones(corners.shape[:2] + (1, ))], -1) @ lidar2img.T  # (N, 8, 4)
    front = (hom[..., 2] > 0.5).all(1)
    uv = hom[..., :2] / np.maximum(hom[..., 2:3], 1e-6)
    lo, hi = uv.min(1), uv.max(1)
    c = np.concatenate([centres, np.ones((n, 1))], 1) @ lidar2img.T
    depth = c[:, 2]
    cuv = c[:, :2] / np.maximum(depth[:, None], 1e-6)
    h, w = img_hw
    for i in range(n):
        if not front[i] or np.any(hi[i] - lo[i] < min_size):
            continue
        u, v = cuv[i]
        if not (margin <= u < w - margin and margin <= v < h - margin):
            continue
        nearer = front & (depth < depth[i]) & (np.arange(n) != i)
        covered = nearer & (lo[:, 0] - 2 <= u) & (u <= hi[:, 0] + 2) & (lo[:, 1] - 2 <= v) & (v <= hi[:, 1] + 2)
        if covered.any():
            continue
        yield i, int(round(u)), int(round(v))
