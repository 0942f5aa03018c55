"""``Det3DDataPreprocessor`` whose hard voxelization accepts empty point clouds.

A sample can arrive without points (a modality-dropout transform that empties the cloud, or a sweep-less frame
filtered to nothing); mmcv's voxelization kernels are not meant for zero points, so empty clouds skip the op and
yield zero voxels: (0, max_num_points, C) voxels, (0, 3) coordinates, (0,) counts.
"""
from torch import Tensor, nn

from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor
from mmdet3d.registry import MODELS


class EmptySafeVoxelization(nn.Module):
    """Wraps a hard voxelization layer; returns empty outputs for an empty (0, C) point cloud."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules['layer'], name)

    def forward(self, points: Tensor):
        if points.shape[0] == 0:
            voxels = points.new_zeros(0, self.layer.max_num_points, points.shape[1])
            coors = points.new_zeros(0, 3).int()
            return voxels, coors, points.new_zeros(0).int()
        return self.layer(points)


@MODELS.register_module()
class CmtDataPreprocessor(Det3DDataPreprocessor):
    """Same arguments as ``Det3DDataPreprocessor``; see the module docstring."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.voxel and self.voxel_type == 'hard':
            self.voxel_layer = EmptySafeVoxelization(self.voxel_layer)
