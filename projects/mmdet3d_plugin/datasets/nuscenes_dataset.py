"""mmdet3d's NuScenesDataset with the dataset version taken from the info file.

mmdet3d's class metainfo says ``version='v1.0-trainval'`` and wins over the info file's ``metainfo.version``
(mmengine merges the file's metainfo with ``setdefault``), so infos written for v1.0-mini (real mini or the
synthetic set) were evaluated as trainval, and the devkit failed after the whole training run. Here the class
has no version: it comes from the info file unless the config sets ``metainfo.version``.
"""
from mmdet3d.datasets import NuScenesDataset
from mmdet3d.registry import DATASETS


@DATASETS.register_module()
class CmtNuScenesDataset(NuScenesDataset):
    """``NuScenesDataset`` (same arguments) whose ``metainfo['version']`` defaults to the info file's."""

    METAINFO = {k: v for k, v in NuScenesDataset.METAINFO.items() if k != 'version'}
