"""CMT with geometric attention bias, as an mmdet3d 1.x plugin.

Importing this package registers every module (attention, models, datasets,
engine hooks) in mmdet3d's registries, so configs only need
``custom_imports = dict(imports=['projects.mmdet3d_plugin'])``. It also makes
mmengine's local file writes atomic, so an interrupted checkpoint save never
destroys the previous checkpoint (see utils/atomic_file_backend.py).
"""
from .utils import register_atomic_local_backend

register_atomic_local_backend()

from . import attention, datasets, engine, evaluation, models  # noqa: E402,F401

__version__ = '0.1.0'
