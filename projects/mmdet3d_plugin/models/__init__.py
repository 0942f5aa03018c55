"""CMT models: image backbones/necks, LiDAR middle encoder, detector, head, transformer, task utils."""
from . import backbones, data_preprocessors, dense_heads, detectors, layers, middle_encoders, necks, task_modules, utils

__all__ = [
    'backbones', 'data_preprocessors', 'dense_heads', 'detectors', 'layers', 'middle_encoders', 'necks', 'task_modules',
    'utils'
]
