"""BEVDet/CMT-style image augmentation: one resize, crop, horizontal flip and rotation for all views."""
import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmdet3d.registry import TRANSFORMS
from .camera_geometry import require_lidar2img

_REQUIRED = ('resize_lim', 'final_dim', 'bot_pct_lim', 'rot_lim', 'H', 'W', 'rand_flip')


@TRANSFORMS.register_module()
class ResizeCropFlipImage(BaseTransform):
    """Resize by ``r``, crop a ``final_dim`` window, optionally flip horizontally and rotate, per view.

    The pixel map is one affine ``P`` (3x3) per sample: ``[u', v', 1] = P @ [u, v, 1]`` (integer pixel centres),
    applied with ``cv2.warpAffine``; ``cam2img`` and ``lidar2img`` are left-multiplied by ``P`` (embedded in 4x4),
    so projections stay exact.

    Train: ``r ~ U(resize_lim)``, crop top = ``int((1 - U(bot_pct_lim)) * H r) - fH``, crop left
    ``~ U(0, W r - fW)``, flip with p = 0.5 if ``rand_flip``, rotation ``~ U(rot_lim)`` degrees about the
    crop centre. Test: ``r = max(fH / H, fW / W)``, centred horizontal crop, bottom crop by ``bot_pct_lim`` mean,
    no flip or rotation.

    Args:
        data_aug_conf (dict): keys resize_lim (lo, hi), final_dim (fH, fW), bot_pct_lim (lo, hi),
            rot_lim (lo, hi) degrees, H, W (input size), rand_flip (bool).
        training (bool): sample the augmentation (True) or use the deterministic test transform.

    Modified keys: img (list of (fH, fW, 3) uint8), cam2img, lidar2img, img_shape, pad_shape.
    Added keys: img_aug_matrix (list of (4, 4), the ``P`` per view).
    """

    def __init__(self, data_aug_conf: dict, training: bool = True) -> None:
        missing = [k for k in _REQUIRED if k not in data_aug_conf]
        if missing:
            raise KeyError(f'ResizeCropFlipImage.data_aug_conf is missing {missing}; expected keys {list(_REQUIRED)}')
        self.conf = dict(data_aug_conf)
        self.training = training

    def _sample_aug(self):
        c = self.conf
        fh, fw = c['final_dim']
        h, w = c['H'], c['W']
        if self.training:
            r = np.random.uniform(*c['resize_lim'])
            nw, nh = int(w * r), int(h * r)
            top = int((1 - np.random.uniform(*c['bot_pct_lim'])) * nh) - fh
            left = int(np.random.uniform(0, max(0, nw - fw)))
            flip = bool(c['rand_flip'] and np.random.choice([0, 1]))
            rot = float(np.random.uniform(*c['rot_lim']))
        else:
            r = max(fh / h, fw / w)
            nw, nh = int(w * r), int(h * r)
            top = int((1 - np.mean(c['bot_pct_lim'])) * nh) - fh
            left = int(max(0, nw - fw) / 2)
            flip, rot = False, 0.0
        return r, left, top, flip, rot

    def _pixel_affine(self, r, left, top, flip, rot) -> np.ndarray:
        fh, fw = self.conf['final_dim']
        mat = np.array([[r, 0, -left], [0, r, -top], [0, 0, 1]], np.float64)
        if flip:
            mat = np.array([[-1, 0, fw - 1], [0, 1, 0], [0, 0, 1]], np.float64) @ mat
        if rot:
            cx, cy = (fw - 1) / 2, (fh - 1) / 2
            a = np.deg2rad(rot)
            rmat = np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])
            mat = (
                np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]]) @ rmat @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
                @ mat)
        return mat

    def transform(self, results: dict) -> dict:
        require_lidar2img(results, type(self).__name__)
        imgs = results['img']
        h, w = imgs[0].shape[:2]
        if (h, w) != (self.conf['H'], self.conf['W']):
            raise ValueError(f'ResizeCropFlipImage.data_aug_conf says H, W = {self.conf["H"]}, {self.conf["W"]} '
                             f'but the loaded images are {h}x{w}')
        fh, fw = self.conf['final_dim']
        mat = self._pixel_affine(*self._sample_aug())
        results['img'] = [
            cv2.warpAffine(
                np.ascontiguousarray(img),
                mat[:2], (fw, fh),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0) for img in imgs
        ]
        mat4 = np.eye(4)
        mat4[:3, :3] = mat
        results['cam2img'] = [mat4 @ np.asarray(k, np.float64) for k in results['cam2img']]
        results['lidar2img'] = [mat4 @ np.asarray(m, np.float64) for m in results['lidar2img']]
        results['img_aug_matrix'] = [mat4.copy() for _ in imgs]
        results['img_shape'] = (fh, fw)
        results['pad_shape'] = (fh, fw)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(data_aug_conf={self.conf}, training={self.training})'
