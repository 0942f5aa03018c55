"""Render the six nuScenes cameras: grey ground and pale sky, objects as shaded class-coloured boxes.

Each object is drawn as its camera-facing box faces (filled polygons, clipped at the near plane), in the
class colour of ``CLASS_COLOR_BGR`` scaled by a per-face shade; objects are painted far to near so nearer
objects cover farther ones. Pixel convention: integer pixel centres, the one the intrinsics use.
"""
import functools

import cv2
import numpy as np

from ..nuscenes_layout import CAMERA_CALIB, CAMERA_NAMES, CLASS_COLOR_BGR, DETECTION_CLASSES, IMAGE_H, IMAGE_W
from .geometry import BOX_FACES, box_corners, quat_to_matrix

NEAR = 0.1  # m
_SHIFT = 4  # fixed-point bits for cv2.fillPoly


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Clip a polygon (P, 3) in camera coordinates against z >= NEAR (Sutherland-Hodgman, one plane)."""
    out = []
    n = len(poly)
    for k in range(n):
        a, b = poly[k], poly[(k + 1) % n]
        ina, inb = a[2] >= NEAR, b[2] >= NEAR
        if ina:
            out.append(a)
        if ina != inb:
            s = (NEAR - a[2]) / (b[2] - a[2])
            out.append(a + s * (b - a))
    return np.asarray(out).reshape(-1, 3)


@functools.lru_cache(maxsize=2)
def _camera_setups(width: int, height: int) -> dict:
    """Per camera: rotation (camera->ego), translation, K and the background image (computed once)."""
    cams = {}
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    for name in CAMERA_NAMES:
        trans, quat, intr = CAMERA_CALIB[name]
        rot = quat_to_matrix(quat)
        k = np.asarray(intr, np.float64)
        background = _background(rot, np.asarray(trans, np.float64), k, u, v)
        background.setflags(write=False)
        cams[name] = dict(rot=rot, trans=np.asarray(trans, np.float64), K=k, background=background)
    return cams


def _background(rot, trans, k, u, v):
    """Sky/ground image (H, W, 3) uint8 of a camera on flat ground: grey ground darkening with distance."""
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(k).T @ rot.T  # (H, W, 3) ego frame
    dz = rays[..., 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        t = np.where(dz < -1e-6, -trans[2] / dz, np.inf)
    dist = t * np.linalg.norm(rays[..., :2], axis=-1)
    ground = 60.0 + 70.0 * np.exp(-np.nan_to_num(dist, posinf=1e3) / 30.0)
    elev = np.clip(dz / np.maximum(np.linalg.norm(rays, axis=-1), 1e-9), 0, 1)
    sky = np.stack([215 - 40 * elev, 205 - 40 * elev, 195 - 40 * elev], -1)
    img = np.where((dz < -1e-6)[..., None], np.repeat(ground[..., None], 3, -1), sky)
    return np.clip(img, 0, 255).astype(np.uint8)


class CameraRenderer:
    """Renders the six cameras (the ego drives on flat ground, so backgrounds are precomputed once)."""

    def __init__(self, width=IMAGE_W, height=IMAGE_H):
        self.width, self.height = width, height
        self.cams = _camera_setups(width, height)

    def render(self, name, centres_ego, wlh, yaw_rots_ego, labels) -> np.ndarray:
        """Image (H, W, 3) uint8 BGR of camera ``name`` for boxes in the ego frame.

        Args:
            centres_ego (M, 3), wlh (M, 3), yaw_rots_ego (M, 3, 3): boxes in the ego frame. labels (M,) int.
        """
        cam = self.cams[name]
        img = cam['background'].copy()
        if len(centres_ego) == 0:
            return img
        rot_c2e, t_c2e, k = cam['rot'], cam['trans'], cam['K']
        corners = box_corners(centres_ego, wlh, yaw_rots_ego)  # (M, 8, 3) ego
        corners_cam = (corners - t_c2e) @ rot_c2e  # (M, 8, 3) camera
        normals_cam = np.einsum('ji,mjk,fk->mfi', rot_c2e, yaw_rots_ego, np.array([f[1] for f in BOX_FACES],
                                                                                  np.float64))  # (M, 6, 3)
        normals_ego = np.einsum('mjk,fk->mfj', yaw_rots_ego, np.array([f[1] for f in BOX_FACES], np.float64))
        depth = corners_cam[..., 2].mean(1)
        for i in np.argsort(-depth):
            if corners_cam[i, :, 2].max() < NEAR:
                continue
            colour = np.array(CLASS_COLOR_BGR[DETECTION_CLASSES[labels[i]]], np.float64)
            for f, (idx, _) in enumerate(BOX_FACES):
                poly = corners_cam[i, list(idx)]
                if np.dot(normals_cam[i, f], poly.mean(0)) >= 0:  # back face
                    continue
                poly = _clip_near(poly)
                if len(poly) < 3:
                    continue
                uv = poly @ k.T
                uv = uv[:, :2] / uv[:, 2:3]
                if (uv[:, 0].max() < 0 or uv[:, 0].min() >= self.width or uv[:, 1].max() < 0
                        or uv[:, 1].min() >= self.height):
                    continue
                nz = normals_ego[i, f, 2]
                shade = 1.0 if nz > 0.5 else 0.62 + 0.3 * abs(normals_ego[i, f, 0])
                pts = np.round(np.clip(uv, -1e5, 1e5) * (1 << _SHIFT)).astype(np.int32)
                cv2.fillPoly(img, [pts], tuple(float(c) for c in colour * shade), lineType=cv2.LINE_8, shift=_SHIFT)
        return img
