"""CMT models: image backbones/necks, detector, head, transformer, task utils."""
from . import backbones, necks  # noqa: F401
from . import data_preprocessors, dense_heads, detectors, layers, task_modules, utils  # noqa: F401
