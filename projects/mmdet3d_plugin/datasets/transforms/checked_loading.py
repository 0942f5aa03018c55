"""mmdet3d's LiDAR and camera loaders, with a missing or corrupt file reported by name and sample token (and how to
re-create it) instead of numpy's / OpenCV's bare errors.

The checks cost one ``stat`` per file (and, for JPEGs, reading their last bytes); they run on local files only
(``backend_args=None``).
"""
from mmdet3d.datasets.transforms import LoadMultiViewImageFromFiles, LoadPointsFromFile, LoadPointsFromMultiSweeps
from mmdet3d.registry import TRANSFORMS
from ..file_checks import (RECREATE_HINT, SampleFileError, jpeg_file_problem, points_file_problem,
                           raise_sample_file_error, sample_label)


def _label(results) -> str:
    return sample_label(results.get('token'), results.get('sample_idx'))


def _checked_load(base_cls, loader, pts_filename: str):
    label = getattr(loader, '_sample', 'unknown sample')
    if loader.backend_args is None and pts_filename.endswith('.bin'):
        problem = points_file_problem(pts_filename, loader.load_dim)
        if problem:
            raise_sample_file_error('LiDAR', pts_filename, problem, label)
    try:
        return base_cls._load_points(loader, pts_filename)
    except (ValueError, OSError) as err:
        raise SampleFileError(f'LiDAR file {pts_filename!r} of {label} could not be read ({err}); '
                              f'{RECREATE_HINT}') from err


@TRANSFORMS.register_module()
class LoadPointsFromFileChecked(LoadPointsFromFile):
    """``LoadPointsFromFile`` (same arguments) that names a missing or truncated file and its sample."""

    def transform(self, results: dict) -> dict:
        self._sample = _label(results)
        return super().transform(results)

    def _load_points(self, pts_filename: str):
        return _checked_load(LoadPointsFromFile, self, pts_filename)


@TRANSFORMS.register_module()
class LoadPointsFromMultiSweepsChecked(LoadPointsFromMultiSweeps):
    """``LoadPointsFromMultiSweeps`` (same arguments) that names a missing or truncated sweep file and its sample."""

    def transform(self, results: dict) -> dict:
        self._sample = _label(results)
        return super().transform(results)

    def _load_points(self, pts_filename: str):
        return _checked_load(LoadPointsFromMultiSweeps, self, pts_filename)


@TRANSFORMS.register_module()
class LoadMultiViewImageFromFilesChecked(LoadMultiViewImageFromFiles):
    """``LoadMultiViewImageFromFiles`` (same arguments) that names a missing, empty or truncated image and its
    sample before decoding, and any image OpenCV cannot decode."""

    def transform(self, results: dict) -> dict:
        label = _label(results)
        paths = [cam['img_path'] for cam in results.get('images', {}).values() if 'img_path' in cam]
        if self.backend_args is None:
            for path in paths:
                problem = jpeg_file_problem(path)
                if problem:
                    raise_sample_file_error('camera', path, problem, label)
        try:
            return super().transform(results)
        except (AttributeError, ValueError, OSError) as err:  # cv2 returns None for an undecodable image
            raise SampleFileError(f'a camera image of {label} could not be decoded ({type(err).__name__}: {err}); '
                                  f'images: {paths}; {RECREATE_HINT}') from err
