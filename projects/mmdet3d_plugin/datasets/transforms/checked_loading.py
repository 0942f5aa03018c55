"""mmdet3d's point loaders, with missing or corrupt point files reported by name (and how to recreate them)."""
import numpy as np

from mmdet3d.datasets.transforms import LoadPointsFromFile, LoadPointsFromMultiSweeps
from mmdet3d.registry import TRANSFORMS

_HINT = ('re-create the data with `python tools/create_data.py nuscenes --root-path <root>` (real nuScenes) or '
         '`python tools/create_data.py synthetic --out <root> --overwrite`')


def _checked_load(base_cls, loader, pts_filename: str) -> np.ndarray:
    try:
        points = base_cls._load_points(loader, pts_filename)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'LiDAR file {pts_filename!r} is missing ({e}); {_HINT}') from e
    if points.ndim == 1 and (points.size == 0 or points.size % loader.load_dim):
        raise ValueError(f'LiDAR file {pts_filename!r} is corrupt: {points.size} float32 values is not a '
                         f'positive multiple of load_dim={loader.load_dim}; {_HINT}')
    return points


@TRANSFORMS.register_module()
class LoadPointsFromFileChecked(LoadPointsFromFile):
    """``LoadPointsFromFile`` (same arguments) that names a missing or truncated file."""

    def _load_points(self, pts_filename: str) -> np.ndarray:
        return _checked_load(LoadPointsFromFile, self, pts_filename)


@TRANSFORMS.register_module()
class LoadPointsFromMultiSweepsChecked(LoadPointsFromMultiSweeps):
    """``LoadPointsFromMultiSweeps`` (same arguments) that names a missing or truncated sweep file."""

    def _load_points(self, pts_filename: str) -> np.ndarray:
        return _checked_load(LoadPointsFromMultiSweeps, self, pts_filename)
