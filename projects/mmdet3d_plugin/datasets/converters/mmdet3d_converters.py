"""nuScenes -> mmdet3d 1.x (v2) info files through the converters shipped in the mmdet3d wheel.

mmdet3d ships ``tools/dataset_converters/*.py`` under ``mmdet3d/.mim/``; they are not a package, and our repo
has its own ``tools/``, so they are loaded by file path under private module names.
"""
import importlib.util
import os.path as osp
import sys
from typing import List

from .errors import DataPrepError, hint_for

NUSC_TABLES = ('category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor', 'ego_pose', 'log',
               'scene', 'sample', 'sample_data', 'sample_annotation', 'map')


def load_mmdet3d_converter(name: str):
    """Import ``mmdet3d/.mim/tools/dataset_converters/<name>.py`` (e.g. 'nuscenes_converter')."""
    import mmdet3d
    path = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'tools', 'dataset_converters', f'{name}.py')
    if not osp.isfile(path):
        raise ImportError(f'mmdet3d converter {path} not found; is mmdet3d 1.4 installed with its .mim tools?')
    mod_name = f'_mmdet3d_dataset_converters.{name}'
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def check_nuscenes_root(root_path: str, version: str) -> None:
    """Raise DataPrepError naming the missing root / table directory / table file and how to create it."""
    if not osp.isdir(root_path):
        raise DataPrepError(f'nuScenes root {root_path!r} does not exist. {hint_for(root_path, version)}')
    table_dir = osp.join(root_path, version)
    if not osp.isdir(table_dir):
        raise DataPrepError(f'nuScenes table directory {table_dir!r} (version {version!r}) does not exist. '
                            f'{hint_for(root_path, version)}')
    for table in NUSC_TABLES:
        path = osp.join(table_dir, f'{table}.json')
        if not osp.isfile(path):
            raise DataPrepError(f'nuScenes table {path!r} is missing. {hint_for(root_path, version)}')


def create_nuscenes_infos_v2(root_path: str,
                             out_dir: str,
                             version: str,
                             info_prefix: str = 'nuscenes',
                             max_sweeps: int = 10) -> List[str]:
    """Run mmdet3d's ``create_nuscenes_infos`` then ``update_pkl_infos`` (to the v2 / 1.x info format).

    The 0.x infos are written to ``root_path`` (mmdet3d's converter fixes that) and the v2 infos to
    ``out_dir`` under the same names (``{info_prefix}_infos_{train,val}.pkl``; ``_test`` for v1.0-test).
    Returns the v2 info paths.
    """
    from nuscenes.nuscenes import NuScenes
    check_nuscenes_root(root_path, version)
    conv = load_mmdet3d_converter('nuscenes_converter')
    upd = load_mmdet3d_converter('update_infos_to_v2')
    try:
        conv.create_nuscenes_infos(root_path, info_prefix, version=version, max_sweeps=max_sweeps)
    except FileNotFoundError as e:  # mmengine.check_file_exist on a LIDAR_TOP file
        raise DataPrepError(f'{e}. A sensor file listed in {osp.join(root_path, version)}/sample_data.json is '
                            f'missing. {hint_for(root_path, version)}') from e

    # update_nuscenes_infos opens NuScenes at a hard-coded './data/nuscenes'; give it ours (loaded once).
    cache = {}

    def _nusc(version, dataroot=None, verbose=True, **kwargs):
        if version not in cache:
            cache[version] = NuScenes(version=version, dataroot=root_path, verbose=verbose)
        return cache[version]

    upd.NuScenes = _nusc
    splits = ['test'] if version == 'v1.0-test' else ['train', 'val']
    out = []
    for split in splits:
        pkl = osp.join(root_path, f'{info_prefix}_infos_{split}.pkl')
        upd.update_pkl_infos('nuscenes', out_dir=out_dir, pkl_path=pkl)
        out.append(osp.join(out_dir, f'{info_prefix}_infos_{split}.pkl'))
    return out
