"""Pre-flight check that the nuScenes version agrees everywhere the evaluation needs it.

The official devkit opens ``<data_root>/<version>/`` with the version of the evaluated dataset's metainfo. A
mismatch (v1.0-mini infos with a config or dataset class that says v1.0-trainval) used to fail only at the first
validation, after the training epochs. Checked here before the Runner is built, for each evaluated dataloader
(val/test) and its evaluator:

* the info file's ``metainfo.version``;
* the dataset's version: ``metainfo.version`` in the config, else its class default (mmdet3d's
  ``NuScenesDataset``: v1.0-trainval; the plugin's ``CmtNuScenesDataset``: none, i.e. the info file's);
* the evaluator's ``version`` key (``NuScenesSplitMetric``) and its ``ann_file``'s version;
* ``<evaluator data_root>/<version>/`` exists.
"""
import os.path as osp
from typing import Optional

from .data_check import DataFileError
from .sample_files_check import ann_path, leaf_datasets, load_infos

NUSCENES_METRICS = ('NuScenesMetric', 'NuScenesSplitMetric')
# (dataloader, evaluator) pairs the Runner evaluates together
EVALUATED = (('val_dataloader', 'val_evaluator'), ('test_dataloader', 'test_evaluator'))


class DatasetVersionError(DataFileError):
    """The nuScenes version of the info files, the config and the data root disagree."""


def _class_version(type_name) -> Optional[str]:
    from mmdet3d.registry import DATASETS
    cls = DATASETS.get(type_name) if isinstance(type_name, str) else type_name
    return (getattr(cls, 'METAINFO', None) or {}).get('version')


def _info_version(path: str) -> Optional[str]:
    return (load_infos(path).get('metainfo') or {}).get('version')


def dataset_version(key: str, ds: dict) -> Optional[str]:
    """The version the built dataset will report, after checking the config against the info file."""
    path = ann_path(ds)
    info = _info_version(path)
    configured = (ds.get('metainfo') or {}).get('version')
    if configured is not None:
        if info is not None and configured != info:
            raise DatasetVersionError(
                f'`{key}.metainfo.version` is {configured!r} but the info file {path} was written for {info!r}. '
                f'Remove the key (with type CmtNuScenesDataset the version then comes from the info file) or '
                f're-create the info files with `tools/create_data.py nuscenes --version {configured}`.')
        return configured
    default = _class_version(ds.get('type'))
    if default is not None and info is not None and default != info:
        raise DatasetVersionError(
            f'`{key}` is a {ds.get("type")}, whose class metainfo says version {default!r}, but the info file '
            f'{path} was written for {info!r}. Use `type=\'CmtNuScenesDataset\'` (the version then comes from '
            f'the info file) or set `{key}.metainfo.version={info!r}`.')
    return default if default is not None else info


def check_dataset_versions(cfg, pairs=EVALUATED) -> None:
    """Raise :class:`DatasetVersionError` (see the module doc) for each (dataloader, evaluator) in ``pairs``."""
    for loader_key, evaluator_key in pairs:
        evaluators = cfg.get(evaluator_key)
        if not cfg.get(loader_key) or not evaluators:
            continue
        versions = {dataset_version(k, ds) for k, ds in leaf_datasets(cfg, (loader_key, ))} - {None}
        if len(versions) != 1:
            continue  # no nuScenes info version to check against
        version = versions.pop()
        for i, ev in enumerate(evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]):
            if ev.get('type') not in NUSCENES_METRICS:
                continue
            ekey = evaluator_key if not isinstance(evaluators, (list, tuple)) else f'{evaluator_key}[{i}]'
            wanted = ev.get('version')
            if wanted is not None and wanted != version:
                raise DatasetVersionError(
                    f'`{ekey}.version` is {wanted!r} but `{loader_key}` holds {version!r} data (its info file\'s '
                    f'metainfo.version). Remove `{ekey}.version` or point the dataloader at {wanted} infos.')
            ann = ev.get('ann_file')
            if ann and osp.isfile(ann):
                ev_info = _info_version(ann)
                if ev_info is not None and ev_info != version:
                    raise DatasetVersionError(
                        f'`{ekey}.ann_file` {ann} is a {ev_info!r} info file but `{loader_key}` holds {version!r} '
                        'data: use the same info file for both.')
            root = ev.get('data_root')
            if root is not None and not osp.isdir(osp.join(root, version)):
                raise DatasetVersionError(
                    f'the nuScenes devkit evaluation of `{ekey}` reads the tables of {version!r} from '
                    f'{osp.join(root, version)!r}, which does not exist. Set `{ekey}.data_root` to the nuScenes '
                    f'root that holds {version}/, or use infos of the version present there.')
