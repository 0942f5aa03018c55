"""LiDAR middle encoders beyond mmdet3d's (SparseEncoderSharedIndices)."""
from .sparse_encoder_shared_indices import SparseEncoderSharedIndices

__all__ = ['SparseEncoderSharedIndices']
