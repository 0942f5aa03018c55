"""CMT's modality dropout: train sometimes without images, sometimes without points."""
import numpy as np
from mmcv.transforms import BaseTransform

from mmdet3d.registry import TRANSFORMS

DROPPED_KEY = 'dropped_modality'


@TRANSFORMS.register_module()
class ModalMask3D(BaseTransform):
    """Drop one modality of a sample.

    What "drop" means (as in CMT):
      * images: every view's pixels are set to 0 (black, uint8). After ``Det3DDataPreprocessor`` normalisation
        they become ``-mean / std`` per channel, exactly what CMT's network saw.
      * points: every feature of every point (x, y, z, intensity, time) is set to 0; the number of points is
        kept, so voxelisation and batching are unchanged: all points sit at the origin (after later global
        augmentations, at one common location) with zero intensity and time, i.e. a single occupied voxel.
    ``results['dropped_modality']`` is set to ``'img'``, ``'points'`` or ``None`` (add it to Pack3DDetInputs'
    ``meta_keys`` so the model sees it in ``data_sample.metainfo``).

    Args:
        mode (str): 'train' draws ``u ~ U(0, 1)``: ``u > 1 - img_drop_prob`` drops images,
            ``1 - img_drop_prob - points_drop_prob < u <= 1 - img_drop_prob`` drops points (CMT: 25% / 25%).
            'test' drops ``mask_modal`` deterministically.
        mask_modal (str | None): 'img', 'points' or None; test mode only.
        img_drop_prob (float), points_drop_prob (float): train-mode probabilities.
    """

    def __init__(self,
                 mode: str = 'train',
                 mask_modal=None,
                 img_drop_prob: float = 0.25,
                 points_drop_prob: float = 0.25) -> None:
        if mode not in ('train', 'test'):
            raise ValueError(f"ModalMask3D.mode must be 'train' or 'test', got {mode!r}")
        if mask_modal not in (None, 'img', 'points'):
            raise ValueError(f"ModalMask3D.mask_modal must be None, 'img' or 'points', got {mask_modal!r}")
        if not (0 <= img_drop_prob and 0 <= points_drop_prob and img_drop_prob + points_drop_prob <= 1):
            raise ValueError('ModalMask3D: img_drop_prob and points_drop_prob must be >= 0 and sum to <= 1')
        self.mode, self.mask_modal = mode, mask_modal
        self.img_drop_prob, self.points_drop_prob = img_drop_prob, points_drop_prob

    def _choose(self):
        if self.mode == 'test':
            return self.mask_modal
        u = np.random.rand()
        if u > 1 - self.img_drop_prob:
            return 'img'
        if u > 1 - self.img_drop_prob - self.points_drop_prob:
            return 'points'
        return None

    def transform(self, results: dict) -> dict:
        drop = self._choose()
        if drop == 'img':
            if 'img' not in results:
                raise KeyError("ModalMask3D drops images but results has no 'img'")
            results['img'] = [np.zeros_like(img) for img in results['img']]
        elif drop == 'points':
            if 'points' not in results:
                raise KeyError("ModalMask3D drops points but results has no 'points'")
            results['points'].tensor.zero_()
        results[DROPPED_KEY] = drop
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(mode={self.mode!r}, mask_modal={self.mask_modal!r}, '
                f'img_drop_prob={self.img_drop_prob}, points_drop_prob={self.points_drop_prob})')
