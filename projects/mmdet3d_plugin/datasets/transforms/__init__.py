"""CMT pipeline transforms for mmdet3d 1.x (registered in mmdet3d's TRANSFORMS on import)."""
from .add_lidar2img import AddLidar2Img
from .checked_loading import (LoadMultiViewImageFromFilesChecked, LoadPointsFromFileChecked,
                              LoadPointsFromMultiSweepsChecked)
from .global_aug_3d import CustomRandomFlip3D, GlobalRotScaleTransAll
from .modal_mask_3d import ModalMask3D
from .resize_crop_flip_image import ResizeCropFlipImage
from .unified_object_sample import UnifiedDataBaseSampler, UnifiedObjectSample

__all__ = [
    'AddLidar2Img', 'LoadMultiViewImageFromFilesChecked', 'LoadPointsFromFileChecked',
    'LoadPointsFromMultiSweepsChecked', 'CustomRandomFlip3D', 'GlobalRotScaleTransAll', 'ModalMask3D',
    'ResizeCropFlipImage', 'UnifiedDataBaseSampler', 'UnifiedObjectSample'
]
