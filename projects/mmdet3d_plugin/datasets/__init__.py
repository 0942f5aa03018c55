"""datasets subpackage: the CMT nuScenes dataset and pipeline transforms (registered in mmdet3d's registries on
import) and the data-root helpers of the configs.

Two subpackages are not imported here, so training never loads them: ``converters`` (nuScenes data preparation:
mmdet3d's info converters and CMT's GT database, run by ``tools/create_data.py``) and ``synthetic`` (the synthetic
nuScenes-format generator of ``tools/create_data.py synthetic``, ``tools/run_demo.py`` and the tests' data
fixture). Import them explicitly (``from projects.mmdet3d_plugin.datasets.synthetic import ...``). They stay in the
package rather than in ``tools/dataset_converters/`` (where mmdet3d keeps its converters) because the tests and
two tools share them, and shared code lives in the package, which both import.
"""
from . import config_utils, file_checks, transforms
from .config_utils import retarget_data_root
from .nuscenes_dataset import CmtNuScenesDataset
from .transforms import (AddLidar2Img, CustomRandomFlip3D, GlobalRotScaleTransAll, LoadMultiViewImageFromFilesChecked,
                         LoadPointsFromFileChecked, LoadPointsFromMultiSweepsChecked, ModalMask3D, ResizeCropFlipImage,
                         UnifiedDataBaseSampler, UnifiedObjectSample)

__all__ = [
    'config_utils', 'file_checks', 'transforms', 'retarget_data_root', 'CmtNuScenesDataset', 'AddLidar2Img',
    'CustomRandomFlip3D', 'GlobalRotScaleTransAll', 'LoadMultiViewImageFromFilesChecked', 'LoadPointsFromFileChecked',
    'LoadPointsFromMultiSweepsChecked', 'ModalMask3D', 'ResizeCropFlipImage', 'UnifiedDataBaseSampler',
    'UnifiedObjectSample'
]
