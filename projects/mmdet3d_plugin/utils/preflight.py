"""What ``tools/train.py`` and ``tools/test.py`` check before they build a Runner (seconds; errors exit with 2).

* data roots and info files exist (``data_check``);
* the nuScenes version of the info files, datasets, evaluators and ``<data_root>/<version>/`` agree
  (``version_check``);
* the sensor files of the first 20 samples of each dataset exist, or all files are intact with
  ``--check-data`` (``sample_files_check``);
* the checkpoint to test or resume is complete (``checkpoint_check``), and a resumed run reuses the seed stored
  in its checkpoint (the sampler's shuffle order is seeded before mmengine reads the checkpoint).
"""
import os.path as osp
from typing import Optional

from .checkpoint_check import CheckpointFileError, check_checkpoint_file, checkpoint_seed
from .data_check import check_dataset_files
from .sample_files_check import check_sample_files, clear_info_cache
from .version_check import EVALUATED, check_dataset_versions

PREFLIGHT_SAMPLES = 20


def check_data(cfg, loaders, full_scan: bool = False) -> int:
    """Every data check for ``loaders``; returns the number of sensor files checked."""
    check_dataset_files(cfg, loaders=loaders)
    try:
        check_dataset_versions(cfg, pairs=[p for p in EVALUATED if p[0] in loaders])
        return check_sample_files(cfg, loaders, limit=None if full_scan else PREFLIGHT_SAMPLES, progress=full_scan)
    finally:
        clear_info_cache()


def resume_checkpoint(cfg) -> Optional[str]:
    """The checkpoint a ``resume=True`` config will load: ``load_from``, else the one named in
    ``<work_dir>/last_checkpoint`` (None when there is none: mmengine then starts afresh)."""
    if cfg.get('load_from'):
        return cfg.load_from
    record = osp.join(cfg.work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        path = f.read().strip()
    if path and not osp.isfile(path):
        raise CheckpointFileError(f'{record} names {path}, which does not exist; pass --resume CHECKPOINT with '
                                  'an existing one')
    return path or None


def prepare_resume(cfg) -> Optional[str]:
    """Check the checkpoint a resumed run will load and take over its seed when the config sets none."""
    if not cfg.get('resume'):
        return None
    path = resume_checkpoint(cfg)
    if path is None:
        return None
    check_checkpoint_file(path)
    randomness = dict(cfg.get('randomness') or {})
    if randomness.get('seed') is None:
        seed = checkpoint_seed(path)
        if seed is not None:
            randomness['seed'] = seed
            cfg.randomness = randomness
    return path
