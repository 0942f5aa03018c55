"""Early, explicit errors for missing pretrained checkpoint files.

mmengine only fails deep inside ``load_checkpoint`` with "<path> can not be
found." and without the config key that set the path. These helpers name both.
Remote checkpoints (any ``scheme://`` path: http(s), torchvision, open-mmlab,
s3, ...) are left to mmengine's loaders.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

_PRETRAINED_TYPES = ('Pretrained', 'PretrainedInit')


def require_checkpoint_file(path: str, key: str) -> None:
    """Raise FileNotFoundError naming ``path`` and config ``key`` when the
    local checkpoint file ``path`` does not exist (remote paths pass)."""
    path = str(path)
    if '://' in path or osp.isfile(path):
        return
    raise FileNotFoundError(f'Pretrained checkpoint not found: {path!r} (config key {key!r}; '
                            f'resolved to {osp.abspath(path)!r} from working directory '
                            f'{os.getcwd()!r}). Put the file there, point {key!r} at it, or set '
                            f'it to None to start from random weights.')


def check_pretrained_path(init_cfg: Optional[Union[dict, Sequence[dict]]], key: str = 'init_cfg') -> List[str]:
    """Check every ``type='Pretrained'`` entry of an mmengine ``init_cfg``.

    Args:
        init_cfg: None, one init config dict or a list of them.
        key: config key of ``init_cfg`` used in messages, e.g.
            ``'model.img_backbone.init_cfg'``.

    Returns:
        The checkpoint paths found (local and remote).

    Raises:
        ValueError: a Pretrained entry has no ``checkpoint``.
        FileNotFoundError: a local checkpoint file does not exist.
    """
    if init_cfg is None:
        return []
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    paths = []
    for i, cfg in enumerate(cfgs):
        init_type = cfg.get('type') if isinstance(cfg, dict) else None
        if getattr(init_type, '__name__', init_type) not in _PRETRAINED_TYPES:
            continue
        entry = key if isinstance(init_cfg, dict) else f'{key}[{i}]'
        checkpoint = cfg.get('checkpoint')
        if not checkpoint:
            raise ValueError(f"{entry}: type='Pretrained' needs a checkpoint "
                             f"path, e.g. dict(type='Pretrained', "
                             f"checkpoint='ckpts/backbone.pth')")
        require_checkpoint_file(checkpoint, f'{entry}.checkpoint')
        paths.append(str(checkpoint))
    return paths
