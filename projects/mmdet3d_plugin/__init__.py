"""CMT with geometric attention bias, as an mmdet3d 1.x plugin.

Importing this package registers every module (attention, models, datasets,
engine hooks and loops) in mmdet3d's registries, so configs only need
``custom_imports = dict(imports=['projects.mmdet3d_plugin'])``. It also
registers the mmengine file backend ``atomic_local`` (crash-safe checkpoint
writes, see utils/atomic_file_backend.py); it changes nothing global: a config
selects it with ``default_hooks.checkpoint.backend_args``.
"""
from .utils import register_atomic_local_backend

register_atomic_local_backend()

from . import attention, datasets, engine, evaluation, models  # noqa: E402,F401

__version__ = '0.1.0'
