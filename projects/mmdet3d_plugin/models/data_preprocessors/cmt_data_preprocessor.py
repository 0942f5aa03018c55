"""``Det3DDataPreprocessor`` with a choice of hard-voxelization implementation; empty clouds are accepted.

``voxel_impl`` (config key ``model.data_preprocessor.voxel_impl``):
- ``'scatter'`` (default): ``ScatterHardVoxelization``, sort/scatter ops with mmcv's exact output, ~2.5 ms per
  300k-point cloud on an H100 against ~70 ms for mmcv 2.1's CUDA kernel (tools/benchmarks/benchmark_voxelization.py);
- ``'mmcv'``: mmdet3d's ``VoxelizationByGridShape`` (mmcv's op), wrapped so that an empty cloud gives zero
  voxels: a sample can arrive without points (a modality-dropout transform that empties the cloud, or a
  sweep-less frame filtered to nothing), and mmcv's kernels are not meant for zero points.
Both return (M, max_num_points, C) voxels, (M, 3) int32 (z, y, x) coordinates and (M,) int32 counts.
"""
from torch import Tensor, nn

from mmdet3d.models.data_preprocessors import Det3DDataPreprocessor
from mmdet3d.registry import MODELS
from .scatter_voxelization import ScatterHardVoxelization

VOXEL_IMPLS = ('scatter', 'mmcv')


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
    """``Det3DDataPreprocessor`` arguments plus ``voxel_impl`` ('scatter' or 'mmcv'); see the module docstring."""

    def __init__(self, *args, voxel_impl: str = 'scatter', **kwargs) -> None:
        if voxel_impl not in VOXEL_IMPLS:
            raise ValueError(f'CmtDataPreprocessor: model.data_preprocessor.voxel_impl must be one of {VOXEL_IMPLS}; '
                             f'got {voxel_impl!r}')
        super().__init__(*args, **kwargs)
        self.voxel_impl = voxel_impl
        if self.voxel and self.voxel_type == 'hard':
            if voxel_impl == 'scatter':
                mmcv_layer = self.voxel_layer  # VoxelizationByGridShape built from voxel_layer by the base class
                self.voxel_layer = ScatterHardVoxelization(
                    point_cloud_range=mmcv_layer.point_cloud_range,
                    max_num_points=mmcv_layer.max_num_points,
                    voxel_size=list(mmcv_layer.voxel_size),
                    max_voxels=tuple(mmcv_layer.max_voxels))
            else:
                self.voxel_layer = EmptySafeVoxelization(self.voxel_layer)
