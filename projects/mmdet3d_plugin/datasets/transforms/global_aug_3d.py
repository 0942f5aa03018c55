"""Global 3D augmentations (rotate/scale/translate, BEV flips) that keep every camera matrix consistent.

Points and boxes move by an affine ``A`` (4x4, LiDAR frame); the cameras see the same world, so each view's
``lidar2cam`` and ``lidar2img`` become ``M @ inv(A)``. Image pixels are not touched.
"""
import numpy as np

from mmdet3d.datasets.transforms import GlobalRotScaleTrans, RandomFlip3D
from mmdet3d.registry import TRANSFORMS
from .camera_geometry import require_lidar2img, right_multiply_lidar_matrices


@TRANSFORMS.register_module()
class GlobalRotScaleTransAll(GlobalRotScaleTrans):
    """mmdet3d ``GlobalRotScaleTrans`` on points and boxes, plus the matching update of ``lidar2cam`` and
    ``lidar2img`` of every camera. Same arguments as ``GlobalRotScaleTrans``.

    Added keys: ``pcd_affine`` ((4, 4) float64 ``A`` with ``p_new = A @ p_old``).
    """

    def transform(self, input_dict: dict) -> dict:
        require_lidar2img(input_dict, type(self).__name__)
        input_dict = super().transform(input_dict)
        rot = np.asarray(input_dict['pcd_rotation'], np.float64).T  # points are rows: p' = p @ rot_T
        affine = np.eye(4)
        affine[:3, :3] = float(input_dict['pcd_scale_factor']) * rot
        affine[:3, 3] = np.asarray(input_dict['pcd_trans'], np.float64)
        input_dict['pcd_affine'] = affine
        right_multiply_lidar_matrices(input_dict, np.linalg.inv(affine))
        return input_dict


@TRANSFORMS.register_module()
class CustomRandomFlip3D(RandomFlip3D):
    """BEV flips of points and boxes (mmdet3d ``RandomFlip3D`` geometry) with ``lidar2cam``/``lidar2img``
    right-multiplied by the flip; images are not flipped (CMT's ``sync_2d=False``).

    Horizontal flip negates y, vertical flip negates x (mmdet3d's LiDAR convention).

    Args:
        flip_ratio_bev_horizontal (float), flip_ratio_bev_vertical (float): probabilities.
    """

    def __init__(self, flip_ratio_bev_horizontal: float = 0.0, flip_ratio_bev_vertical: float = 0.0, **kwargs) -> None:
        if kwargs.pop('sync_2d', False):
            raise ValueError('CustomRandomFlip3D never flips images; sync_2d must be False')
        super().__init__(
            sync_2d=False,
            flip_ratio_bev_horizontal=flip_ratio_bev_horizontal,
            flip_ratio_bev_vertical=flip_ratio_bev_vertical,
            **kwargs)

    def transform(self, input_dict: dict) -> dict:
        require_lidar2img(input_dict, type(self).__name__)
        if 'pcd_horizontal_flip' not in input_dict:
            input_dict['pcd_horizontal_flip'] = bool(np.random.rand() < self.flip_ratio_bev_horizontal)
        if 'pcd_vertical_flip' not in input_dict:
            input_dict['pcd_vertical_flip'] = bool(np.random.rand() < self.flip_ratio_bev_vertical)
        input_dict.setdefault('transformation_3d_flow', [])
        for direction, key, axis, tag in (('horizontal', 'pcd_horizontal_flip', 1, 'HF'),
                                          ('vertical', 'pcd_vertical_flip', 0, 'VF')):
            if input_dict[key]:
                self.random_flip_data_3d(input_dict, direction)
                flip = np.eye(4)
                flip[axis, axis] = -1.0
                right_multiply_lidar_matrices(input_dict, flip)
                input_dict['transformation_3d_flow'].append(tag)
        return input_dict
