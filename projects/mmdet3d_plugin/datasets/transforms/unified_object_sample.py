"""CMT's multimodal GT paste: database objects are pasted into the point cloud and into every camera."""
import os.path as osp

import cv2
import mmcv
import numpy as np

from mmdet3d.datasets.transforms import ObjectSample
from mmdet3d.datasets.transforms.dbsampler import DataBaseSampler
from mmdet3d.registry import TRANSFORMS
from .camera_geometry import project_points, projected_boxes_2d, require_lidar2img


@TRANSFORMS.register_module()
class UnifiedDataBaseSampler(DataBaseSampler):
    """mmdet3d ``DataBaseSampler`` that also returns the sampled database records (``ret['db_infos']``, in the
    order of ``ret['gt_bboxes_3d']``), so their image crops (``image_path`` etc., written by
    ``tools/create_data.py``) can be pasted. Same arguments as ``DataBaseSampler``."""

    def sample_class_v2(self, name, num, gt_bboxes):
        sampled = super().sample_class_v2(name, num, gt_bboxes)
        self._last_sampled.extend(sampled)
        return sampled

    def sample_all(self, gt_bboxes, gt_labels, img=None, ground_plane=None):
        self._last_sampled = []
        ret = super().sample_all(gt_bboxes, gt_labels, img=img, ground_plane=ground_plane)
        if ret is not None:
            ret['db_infos'] = list(self._last_sampled)
        return ret


@TRANSFORMS.register_module()
class UnifiedObjectSample(ObjectSample):
    """GT paste in points and images (CMT ``UnifiedObjectSample``, ``sample_method='depth'``).

    Points: as mmdet3d ``ObjectSample`` (points inside sampled boxes removed, sampled object points added).
    Images (``sample_2d=True``): in every view, all boxes (original and sampled) whose 8 corners are in front
    of the camera are projected to 2D boxes and pasted far to near (by centre depth): a sampled object pastes
    its database crop resized to its projected box, an original object re-pastes its own pixels from the
    unpasted image, so it stays on top of farther pasted objects. Each paste blends
    ``img * (1 - mixup_rate) + patch * mixup_rate``. Subclassing ``ObjectSample`` lets
    ``ObjectSampleSwitchHook`` (and mmdet3d's ``DisableObjectSampleHook``) switch it off (they set ``disabled``).

    Args:
        db_sampler (dict): a ``UnifiedDataBaseSampler`` config (type defaults to it); its ``info_path`` must be
            the CMT database from ``tools/create_data.py`` (records with ``image_path``).
        sample_2d (bool): paste image crops too. mixup_rate (float): blend weight of the pasted patch.

    Required keys: points, gt_bboxes_3d, gt_labels_3d; img and lidar2img if sample_2d.
    Modified keys: points, gt_bboxes_3d, gt_labels_3d, img.
    """

    def __init__(self,
                 db_sampler: dict,
                 sample_2d: bool = True,
                 mixup_rate: float = 0.5,
                 use_ground_plane: bool = False,
                 max_paste_area_ratio: float = 16.0) -> None:
        db_sampler = dict(db_sampler)
        db_sampler.setdefault('type', 'UnifiedDataBaseSampler')
        super().__init__(db_sampler, sample_2d=False, use_ground_plane=use_ground_plane)
        if not isinstance(self.db_sampler, UnifiedDataBaseSampler):
            raise TypeError(f'UnifiedObjectSample.db_sampler must be a UnifiedDataBaseSampler, got '
                            f'{type(self.db_sampler).__name__}')
        if not 0.0 <= mixup_rate <= 1.0:
            raise ValueError(f'UnifiedObjectSample.mixup_rate must be in [0, 1], got {mixup_rate}')
        self.paste_2d = sample_2d
        self.mixup_rate = mixup_rate
        self.max_paste_area_ratio = max_paste_area_ratio

    def _load_crop(self, info):
        rel = info.get('image_path')
        if not rel:
            return None
        path = osp.join(self.db_sampler.data_root, rel) if self.db_sampler.data_root else rel
        crop = mmcv.imread(path, flag='color')
        if crop is None:
            raise FileNotFoundError(f'GT-database crop {path} (db info image_path) is missing or unreadable; '
                                    're-run `python tools/create_data.py nuscenes ...` to rebuild the database')
        return crop

    def _paste_images(self, imgs, lidar2img, boxes, num_ori, db_infos):
        corners = boxes.corners.numpy().astype(np.float64)  # (M, 8, 3)
        centres = boxes.gravity_center.numpy().astype(np.float64)  # (M, 3)
        crops = [self._load_crop(info) for info in db_infos]
        out = []
        for img, l2i in zip(imgs, lidar2img):
            h, w = img.shape[:2]
            full, clipped, valid = projected_boxes_2d(corners, l2i, (h, w))
            _, depth = project_points(centres, l2i)
            canvas = img.astype(np.float32)
            for i in np.argsort(-depth):
                if not valid[i]:
                    continue
                x0, y0, x1, y1 = clipped[i]
                if i < num_ori:
                    patch = img[y0:y1, x0:x1].astype(np.float32)
                else:
                    crop = crops[i - num_ori]
                    ox, oy = int(np.floor(full[i, 0])), int(np.floor(full[i, 1]))
                    rw, rh = int(np.ceil(full[i, 2])) - ox, int(np.ceil(full[i, 3])) - oy
                    if crop is None or rw * rh > self.max_paste_area_ratio * h * w:
                        continue
                    resized = cv2.resize(crop, (max(rw, 1), max(rh, 1)), interpolation=cv2.INTER_LINEAR)
                    patch = resized[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(np.float32)
                canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - self.mixup_rate) + patch * self.mixup_rate
            out.append(np.clip(np.round(canvas), 0, 255).astype(img.dtype))
        return out

    def transform(self, input_dict: dict) -> dict:
        if self.disabled:
            return input_dict
        if self.paste_2d:
            require_lidar2img(input_dict, type(self).__name__)
        gt_bboxes_3d = input_dict['gt_bboxes_3d']
        gt_labels_3d = input_dict['gt_labels_3d']
        ground_plane = input_dict.get('plane', None) if self.use_ground_plane else None
        sampled = self.db_sampler.sample_all(gt_bboxes_3d.numpy(), gt_labels_3d, img=None, ground_plane=ground_plane)
        if sampled is not None:
            num_ori = len(gt_bboxes_3d)
            gt_labels_3d = np.concatenate([gt_labels_3d, sampled['gt_labels_3d']], axis=0)
            gt_bboxes_3d = gt_bboxes_3d.new_box(np.concatenate([gt_bboxes_3d.numpy(), sampled['gt_bboxes_3d']]))
            points = self.remove_points_in_boxes(input_dict['points'], sampled['gt_bboxes_3d'])
            input_dict['points'] = points.cat([sampled['points'], points])
            if self.paste_2d:
                input_dict['img'] = self._paste_images(input_dict['img'], input_dict['lidar2img'], gt_bboxes_3d,
                                                       num_ori, sampled['db_infos'])
        input_dict['gt_bboxes_3d'] = gt_bboxes_3d
        input_dict['gt_labels_3d'] = np.asarray(gt_labels_3d).astype(np.int64)
        return input_dict

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(sample_2d={self.paste_2d}, mixup_rate={self.mixup_rate}, '
                f'db_sampler={type(self.db_sampler).__name__})')
