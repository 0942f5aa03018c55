"""Evaluation metrics beyond mmdet3d's."""
from .nuscenes_split_metric import NuScenesSplitMetric

__all__ = ['NuScenesSplitMetric']
