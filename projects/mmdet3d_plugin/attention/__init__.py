"""Bias attention: the geometric query-point / key-line bias and the
``GeometricBiasAttention`` module (registered in mmdet3d's MODELS).

The Triton kernel (``triton_attention.py``) is imported lazily by the
'triton'/'auto' paths, so this package imports without it.
"""
from .bias_attention import GeometricBiasAttention, mha_masks_to_additive
from .functional import (bias_attention, clear_key_factor_cache,
                         dense_geometric_bias, exact_bias_attention,
                         resolve_mode, sdpa_bias_attention,
                         triton_path_attention)
from .geometry import (FACTOR_RANK, bev_key_lines, camera_key_lines,
                       key_factors, point_line_dist2, query_factors)
from .low_rank import svd_bias_attention
from .path_inputs import VALID_BIAS_MODES

__all__ = [
    'GeometricBiasAttention', 'mha_masks_to_additive', 'bias_attention',
    'clear_key_factor_cache', 'dense_geometric_bias', 'exact_bias_attention',
    'resolve_mode', 'sdpa_bias_attention', 'svd_bias_attention',
    'triton_path_attention', 'FACTOR_RANK', 'bev_key_lines',
    'camera_key_lines', 'key_factors', 'point_line_dist2', 'query_factors',
    'VALID_BIAS_MODES'
]
