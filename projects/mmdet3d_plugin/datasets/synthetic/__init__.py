"""Synthetic nuScenes-format dataset generator (no mmdet3d needed to generate)."""
from .build import MARKER, build_synthetic_dataset
from .generator import TABLES, generate_synthetic_nuscenes
from .splits import default_version, scene_names

__all__ = [
    'build_synthetic_dataset', 'MARKER', 'generate_synthetic_nuscenes', 'scene_names', 'default_version', 'TABLES'
]
