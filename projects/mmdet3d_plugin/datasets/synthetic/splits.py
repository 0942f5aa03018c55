"""Which official scene names (and so which devkit split) each synthetic scene gets.

The devkit's evaluation and mmdet3d's converter select scenes by name through
``nuscenes.utils.splits``, so synthetic scenes must carry official names and the matching ``version``:

* ``v1.0-mini`` (default for <= 10 scenes): train scenes take names from ``splits.mini_train`` (8 names),
  val scenes from ``splits.mini_val`` (2 names) -> the converter's train/val infos, NuScenesMetric's
  ``mini_val`` evaluation set.
* ``v1.0-trainval`` (default for > 10 scenes): train names from ``splits.train`` (700), val names from
  ``splits.val`` (150) -> NuScenesMetric's ``val`` evaluation set.

The number of val scenes defaults to ``max(1, round(0.2 * N))`` for N >= 2 (0 for N = 1); train scenes come
first in generation order, then val scenes.
"""
from typing import List, Optional, Tuple


def default_version(num_scenes: int) -> str:
    return 'v1.0-mini' if num_scenes <= 10 else 'v1.0-trainval'


def scene_names(num_scenes: int, version: str, num_val: Optional[int] = None) -> Tuple[List[str], List[str]]:
    """Official (train names, val names) for ``num_scenes`` synthetic scenes of ``version``."""
    from nuscenes.utils import splits
    pools = {'v1.0-mini': (splits.mini_train, splits.mini_val), 'v1.0-trainval': (splits.train, splits.val)}
    if version not in pools:
        raise ValueError(f'version must be one of {sorted(pools)}, got {version!r}')
    if num_scenes < 1:
        raise ValueError(f'--scenes must be >= 1, got {num_scenes}')
    if num_val is None:
        num_val = 0 if num_scenes == 1 else max(1, round(0.2 * num_scenes))
    num_train = num_scenes - num_val
    train_pool, val_pool = pools[version]
    if not 0 <= num_val <= len(val_pool) or not 0 <= num_train <= len(train_pool):
        raise ValueError(f'{version} has {len(train_pool)} train and {len(val_pool)} val scene names; cannot place '
                         f'{num_train} train + {num_val} val scenes (use --version v1.0-trainval or --val-scenes)')
    return list(train_pool[:num_train]), list(val_pool[:num_val])
