"""Cheap checks of one sample's sensor files, shared by the loading transforms and the pre-flight data scan.

A LiDAR ``.bin`` holds float32 points of ``load_dim`` values each: its size must be a positive multiple of
``4 * load_dim`` bytes. A JPEG ends with the EOI marker ``FF D9``: a file cut short lacks it (OpenCV would
decode such a file to None, or silently to a partly grey image). Only the file size and the last bytes are read.
"""
import os
import os.path as osp
from typing import Optional

RECREATE_HINT = ('re-create the data with `python tools/create_data.py nuscenes --root-path <root>` (real '
                 'nuScenes: re-download the file) or `python tools/create_data.py synthetic --out <root> --overwrite`')
JPEG_TAIL_BYTES = 32  # EOI may be followed by a few padding bytes


class SampleFileError(ValueError):
    """A sensor file of a sample is missing or corrupt."""


def sample_label(token: Optional[str] = None, sample_idx=None) -> str:
    if token is None and sample_idx is None:
        return 'unknown sample'
    return f'sample {token}' + (f' (index {sample_idx})' if sample_idx is not None else '')


def points_file_problem(path: str, load_dim: int) -> Optional[str]:
    """Why the LiDAR file ``path`` cannot be read as float32 x ``load_dim`` points, or None if it can."""
    if not osp.isfile(path):
        return 'is missing'
    size = os.path.getsize(path)
    if size == 0 or size % (4 * load_dim):
        return (f'is truncated or corrupt: {size} bytes is not a positive multiple of 4 * load_dim = '
                f'{4 * load_dim} (float32 x {load_dim} values per point)')
    return None


def jpeg_file_problem(path: str) -> Optional[str]:
    """Why the image ``path`` is unusable (missing, empty, a JPEG without its end marker), or None."""
    if not osp.isfile(path):
        return 'is missing'
    size = os.path.getsize(path)
    if size == 0:
        return 'is empty'
    with open(path, 'rb') as f:
        head = f.read(2)
        if head != b'\xff\xd8':  # not a JPEG: left to the decoder
            return None
        f.seek(max(0, size - JPEG_TAIL_BYTES))
        tail = f.read()
    if b'\xff\xd9' not in tail:
        return f'is truncated: a {size}-byte JPEG without its end-of-image marker'
    return None


def raise_sample_file_error(kind: str, path: str, problem: str, label: str):
    cls = FileNotFoundError if problem == 'is missing' else SampleFileError
    raise cls(f'{kind} file {path!r} of {label} {problem}; {RECREATE_HINT}')
