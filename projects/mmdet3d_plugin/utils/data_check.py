"""Check, before a Runner is built, that the data files a config points at exist.

A missing nuScenes root or info file otherwise surfaces as a traceback deep inside a dataloader worker;
this turns it into one message naming the config key, the path and the command that creates it.
"""
import os.path as osp
from typing import Iterator, Tuple

CREATE_HINT = ('Create it with `python tools/create_data.py nuscenes --root-path {root} --out-dir {root} '
               '--version v1.0-trainval` (real nuScenes), or generate a synthetic nuScenes-format set with '
               '`python tools/create_data.py synthetic --out {root}`.')


class DataFileError(FileNotFoundError):
    """A data root or annotation file named by the config does not exist."""


def _iter_datasets(cfg, key: str) -> Iterator[Tuple[str, dict]]:
    """Yield (config key, dataset cfg) for a dataset cfg and the datasets it wraps (CBGS, repeat, concat)."""
    if cfg is None:
        return
    yield key, cfg
    if cfg.get('dataset') is not None:
        yield from _iter_datasets(cfg['dataset'], key + '.dataset')
    for i, sub in enumerate(cfg.get('datasets') or []):
        yield from _iter_datasets(sub, f'{key}.datasets[{i}]')


def check_dataset_files(cfg, loaders=('train_dataloader', 'val_dataloader', 'test_dataloader')) -> None:
    """Raise :class:`DataFileError` if a ``data_root`` or ``ann_file`` of the given dataloaders is missing.

    Args:
        cfg (mmengine.Config): the full config.
        loaders (tuple[str]): top-level dataloader keys to check; absent or None ones are skipped.
    """
    for loader_key in loaders:
        loader = cfg.get(loader_key)
        if not loader:
            continue
        for key, ds in _iter_datasets(loader.get('dataset'), loader_key + '.dataset'):
            root = ds.get('data_root')
            if root is not None and not osp.isdir(root):
                raise DataFileError(f'Data root {root!r} (config key `{key}.data_root`) does not exist. ' +
                                    CREATE_HINT.format(root=root))
            ann = ds.get('ann_file')
            if ann:
                path = ann if osp.isabs(ann) or root is None else osp.join(root, ann)
                if not osp.isfile(path):
                    raise DataFileError(f'Annotation file {path!r} (config key `{key}.ann_file`) does not exist. ' +
                                        CREATE_HINT.format(root=root or osp.dirname(path)))
