"""Compute every camera's ``lidar2img`` right after the images are loaded."""
from mmcv.transforms import BaseTransform

from mmdet3d.registry import TRANSFORMS
from .camera_geometry import to_4x4


@TRANSFORMS.register_module()
class AddLidar2Img(BaseTransform):
    """Turn ``cam2img`` (3x3 lists from the v2 infos) and ``lidar2cam`` into (4, 4) float64 arrays per view and
    set ``lidar2img[v] = cam2img[v] @ lidar2cam[v]`` (a list, so Pack3DDetInputs puts it in metainfo).

    Required keys: cam2img, lidar2cam (lists, one per view, from LoadMultiViewImageFromFiles).
    Modified keys: cam2img, lidar2cam. Added keys: lidar2img.
    """

    def transform(self, results: dict) -> dict:
        for key in ('cam2img', 'lidar2cam'):
            if key not in results or not isinstance(results[key], (list, tuple)):
                raise KeyError(f'AddLidar2Img needs results[{key!r}] as a list per camera; put it after '
                               'LoadMultiViewImageFromFiles')
        if len(results['cam2img']) != len(results['lidar2cam']):
            raise ValueError(f'cam2img has {len(results["cam2img"])} views but lidar2cam has '
                             f'{len(results["lidar2cam"])}')
        results['cam2img'] = [to_4x4(m) for m in results['cam2img']]
        results['lidar2cam'] = [to_4x4(m) for m in results['lidar2cam']]
        results['lidar2img'] = [k @ e for k, e in zip(results['cam2img'], results['lidar2cam'])]
        return results
