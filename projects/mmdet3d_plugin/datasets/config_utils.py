"""Point a built config's data paths at another nuScenes root (e.g. a synthetic set in a temp dir)."""
import os.path as osp

_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
_EVALUATORS = ('val_evaluator', 'test_evaluator')


def _retarget(node, root: str, old_root: str):
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key == 'data_root' and isinstance(value, str):
                node[key] = root
            elif key in ('info_path', 'ann_file') and isinstance(value, str) and old_root and \
                    value.startswith(old_root):
                node[key] = osp.join(root, value[len(old_root):])
            else:
                _retarget(value, root, old_root)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _retarget(item, root, old_root)


def retarget_data_root(cfg, root: str, old_root: str = None):
    """In place: every ``data_root`` under the dataloaders/evaluators becomes ``root``; every ``ann_file`` /
    ``info_path`` that starts with ``old_root`` (default ``cfg.data_root``) is moved under ``root``.
    Returns ``cfg``."""
    old_root = old_root if old_root is not None else cfg.get('data_root', '')
    root = root if root.endswith('/') else root + '/'
    for key in _LOADERS + _EVALUATORS:
        if cfg.get(key) is not None:
            _retarget(cfg[key], root, old_root)
    cfg['data_root'] = root
    return cfg
