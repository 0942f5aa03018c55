"""nuScenes data preparation: mmdet3d's converters (v2 infos) and CMT's GT database with image crops."""
from .cmt_gt_database import create_cmt_gt_database, nuscenes_data_prefix
from .errors import DataPrepError
from .mmdet3d_converters import check_nuscenes_root, create_nuscenes_infos_v2, load_mmdet3d_converter
from .nuscenes_prep import prepare_nuscenes

__all__ = [
    'create_cmt_gt_database', 'nuscenes_data_prefix', 'DataPrepError', 'check_nuscenes_root',
    'create_nuscenes_infos_v2', 'load_mmdet3d_converter', 'prepare_nuscenes'
]
