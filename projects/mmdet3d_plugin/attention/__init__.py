"""Bias attention: the geometric query-point / key-line bias and the
``GeometricBiasAttention`` module (registered in mmdet3d's MODELS).

Layout: ``geometry.py`` (key lines, rank-10 factors), ``path_inputs.py``
(checks, centring), ``factored_sdpa.py`` (low-rank bias folded into q/k),
``paths/`` (one file per path; the Triton kernels in
``paths/triton_kernels.py`` are imported lazily, so this package imports
without Triton), ``dispatch.py`` (``resolve_mode`` / ``bias_attention``),
``geometric_bias_attention.py`` (the module) and ``testing.py`` (fp64
references, CMT shapes and timers shared by tests and benchmarks).
"""
from .dispatch import bias_attention, resolve_mode, run_path
from .geometric_bias_attention import GeometricBiasAttention, mha_masks_to_additive
from .geometry import FACTOR_RANK, bev_key_lines, camera_key_lines, key_factors, point_line_dist2, query_factors
from .path_inputs import BIAS_PATHS, VALID_BIAS_MODES
from .paths import (clear_key_factor_cache, dense_geometric_bias, exact_bias_attention, sdpa_bias_attention,
                    svd_bias_attention, triton_is_available, triton_path_attention)

__all__ = [
    'GeometricBiasAttention', 'mha_masks_to_additive', 'bias_attention', 'clear_key_factor_cache',
    'dense_geometric_bias', 'exact_bias_attention', 'resolve_mode', 'run_path', 'sdpa_bias_attention',
    'svd_bias_attention', 'triton_is_available', 'triton_path_attention', 'FACTOR_RANK', 'bev_key_lines',
    'camera_key_lines', 'key_factors', 'point_line_dist2', 'query_factors', 'VALID_BIAS_MODES', 'BIAS_PATHS'
]
