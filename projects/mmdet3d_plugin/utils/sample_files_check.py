"""Pre-flight check of the sensor files that a config's info files point at.

``check_sample_files(cfg, loaders, limit=20)`` stats the LiDAR, sweep and camera files of the first ``limit``
samples of each dataset (``limit=None``: every sample, plus the size and JPEG checks of
``datasets/file_checks.py``: ``tools/train.py --check-data``). Paths are joined as the dataset joins them
(data_root + data_prefix + info path), so they are what training will open.
When none of the first files exists, ``data_root`` is wrong (the info file was built from another root),
which is a different fix from re-creating missing files.
"""
import os
import os.path as osp
import re
from typing import Dict, Iterator, List, Optional, Tuple

import mmengine

from ..datasets.file_checks import RECREATE_HINT, jpeg_file_problem, points_file_problem, sample_label
from .data_check import DataFileError, _iter_datasets


def leaf_datasets(cfg, loaders) -> Iterator[Tuple[str, dict]]:
    """(config key, dataset cfg) of every dataset with an ``ann_file`` under the given dataloaders."""
    for loader_key in loaders:
        loader = cfg.get(loader_key)
        if not loader:
            continue
        for key, ds in _iter_datasets(loader.get('dataset'), loader_key + '.dataset'):
            if ds.get('ann_file'):
                yield key, ds


def ann_path(ds: dict) -> str:
    ann, root = ds['ann_file'], ds.get('data_root')
    return ann if osp.isabs(ann) or root is None else osp.join(root, ann)


_INFO_CACHE: Dict[str, dict] = {}
MISSING_FOR_WRONG_ROOT = 10  # this many missing files before the first present one: data_root is wrong


def load_infos(path: str) -> dict:
    """The info file (cached: the version and file checks read the same files)."""
    if path not in _INFO_CACHE:
        _INFO_CACHE[path] = mmengine.load(path)
    return _INFO_CACHE[path]


def clear_info_cache() -> None:
    """Drop the loaded info files (the Runner loads its own copy; trainval infos are large)."""
    _INFO_CACHE.clear()


def sample_paths(ds: dict, info: dict) -> List[Tuple[str, str, int]]:
    """[(kind, path, load_dim)] of one raw info entry; kind is 'LiDAR', 'LiDAR sweep' or the camera name.

    The paths are joined as mmdet3d's ``Det3DDataset.parse_data_info`` joins them (data_root + data_prefix +
    file name; a sweep keeps only its file name, under the 'pts' prefix if it lies in samples/, else under
    'sweeps'), without building the dataset, which would load the info file once more
    (``test_sample_paths_match_the_dataset`` checks they agree)."""
    root = ds.get('data_root') or ''
    prefix = {
        k: (v if osp.isabs(v) or not root else osp.join(root, v))
        for k, v in (ds.get('data_prefix') or {}).items()
    }
    modality = ds.get('modality') or {}
    out = []
    if modality.get('use_lidar', True) and 'lidar_points' in info:
        dim = int(info['lidar_points'].get('num_pts_feats', 5))
        out.append(('LiDAR', osp.join(prefix.get('pts', ''), info['lidar_points']['lidar_path']), dim))
        for sweep in info.get('lidar_sweeps', []):
            raw = sweep['lidar_points']['lidar_path']
            out.append(('LiDAR sweep',
                        osp.join(prefix['pts'] if 'samples' in raw else prefix.get('sweeps', ''),
                                 raw.split(os.sep)[-1]), dim))
    if modality.get('use_camera', False):
        for cam, img in info.get('images', {}).items():
            if img.get('img_path'):
                out.append((cam, osp.join(prefix.get(cam, prefix.get('img', '')), img['img_path']), 0))
    return out


def _built_from_root(data_list) -> Optional[str]:
    """The data root the converter ran on, as recorded in the sweep paths ('<root>/sweeps/LIDAR_TOP/...'; the
    converter keeps them whole, and a scene's first sample has no sweep)."""
    for info in data_list:
        for sweep in info.get('lidar_sweeps', []):
            m = re.match(r'(.*?)/?(sweeps|samples)/LIDAR_TOP/', sweep.get('lidar_points', {}).get('lidar_path', ''))
            if m:
                return m.group(1) or '.'
    return None


def _problem(kind: str, path: str, load_dim: int, deep: bool) -> Optional[str]:
    if not deep:
        return None if osp.exists(path) else 'is missing'
    if kind.startswith('LiDAR'):
        return points_file_problem(path, load_dim) if path.endswith('.bin') else \
            (None if osp.exists(path) else 'is missing')
    return jpeg_file_problem(path)


def _file_error(kind, file, label, problem, path, key) -> DataFileError:
    return DataFileError(f'{kind} file {file!r} of {label} {problem} (info file {path}, config key `{key}`); '
                         f'{RECREATE_HINT}')


def check_sample_files(cfg, loaders, limit: Optional[int] = 20, progress: bool = False) -> int:
    """Raise :class:`DataFileError` on the first bad file (see the module doc). Returns the files checked."""
    checked = 0
    for key, ds in leaf_datasets(cfg, loaders):
        if ds.get('backend_args'):
            continue  # remote storage: not stat-able here
        path = ann_path(ds)
        data_list = load_infos(path).get('data_list', [])
        if not data_list:
            continue
        chosen = data_list if limit is None else data_list[:limit]
        found, missing = 0, []
        for n, info in enumerate(chosen):
            if progress and n % 500 == 0:
                print(f'{key}: checked {n}/{len(chosen)} samples of {path}', flush=True)
            label = sample_label(info.get('token'), info.get('sample_idx'))
            for kind, file, dim in sample_paths(ds, info):
                checked += 1
                problem = _problem(kind, file, dim, deep=limit is None)
                if problem is None:
                    found += 1
                    continue
                if problem != 'is missing' or found:
                    raise _file_error(kind, file, label, problem, path, key)
                missing.append((kind, file, label))
            if len(missing) >= MISSING_FOR_WRONG_ROOT:
                break
        if missing and not found:
            root = ds.get('data_root')
            built = _built_from_root(data_list)
            raise DataFileError(
                f'data_root {root!r} (config key `{key}.data_root`) does not match the root the info file {path} '
                f'was built from' + (f' ({built!r}, as its sweep paths say)' if built else '') +
                f': none of the first files exists, e.g. {missing[0][0]} {missing[0][1]!r} of {missing[0][2]}. '
                'Set `data_root` to the directory that holds samples/ and sweeps/ (and the info files).')
        if missing:  # missing files before the first present one
            raise _file_error(*missing[0], 'is missing', path, key)
        if progress:
            print(f'{key}: {len(chosen)} samples of {path}: all files present and intact', flush=True)
    return checked
