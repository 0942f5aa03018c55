"""CMT models: image backbones/necks, detector, head, transformer, task utils."""
from . import backbones, data_preprocessors, dense_heads, detectors, layers, necks, task_modules, utils  # noqa: F401
