"""datasets subpackage: CMT pipeline transforms (registered in mmdet3d's TRANSFORMS on import), nuScenes data
preparation (mmdet3d converters + CMT GT database) and the synthetic nuScenes-format generator."""
from . import config_utils, converters, file_checks, synthetic, transforms
from .config_utils import retarget_data_root
from .nuscenes_dataset import CmtNuScenesDataset
from .transforms import (AddLidar2Img, CustomRandomFlip3D, GlobalRotScaleTransAll,
                         LoadMultiViewImageFromFilesChecked, LoadPointsFromFileChecked,
                         LoadPointsFromMultiSweepsChecked, ModalMask3D, ResizeCropFlipImage, UnifiedDataBaseSampler,
                         UnifiedObjectSample)

__all__ = ['config_utils', 'converters', 'file_checks', 'synthetic', 'transforms', 'retarget_data_root',
           'CmtNuScenesDataset', 'AddLidar2Img', 'CustomRandomFlip3D', 'GlobalRotScaleTransAll',
           'LoadMultiViewImageFromFilesChecked', 'LoadPointsFromFileChecked',
           'LoadPointsFromMultiSweepsChecked', 'ModalMask3D', 'ResizeCropFlipImage', 'UnifiedDataBaseSampler',
           'UnifiedObjectSample']
