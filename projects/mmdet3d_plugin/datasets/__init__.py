"""datasets subpackage: CMT pipeline transforms (registered in mmdet3d's TRANSFORMS on import), nuScenes data
preparation (mmdet3d converters + CMT GT database) and the synthetic nuScenes-format generator."""
from . import config_utils, converters, synthetic, transforms
from .config_utils import retarget_data_root
from .transforms import (AddLidar2Img, CustomRandomFlip3D, GlobalRotScaleTransAll, LoadPointsFromFileChecked,
                         LoadPointsFromMultiSweepsChecked, ModalMask3D, ResizeCropFlipImage, UnifiedDataBaseSampler,
                         UnifiedObjectSample)

__all__ = ['config_utils', 'converters', 'synthetic', 'transforms', 'retarget_data_root', 'AddLidar2Img',
           'CustomRandomFlip3D', 'GlobalRotScaleTransAll', 'LoadPointsFromFileChecked',
           'LoadPointsFromMultiSweepsChecked', 'ModalMask3D', 'ResizeCropFlipImage', 'UnifiedDataBaseSampler',
           'UnifiedObjectSample']
