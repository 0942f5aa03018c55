"""The attention paths, one file each, all computing

    out = softmax(q k^T / sqrt(D) - bias_scale[h] * dist2(r/L, line/L)) v

with the same arguments: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv);
r (B, Nq, 3) query points; o, d (B, Nk, 3) or (Nk, 3) key lines (d unit);
bias_scale (H,); length_scale L (metres). They return (B, H, Nq, Dv) with
gradients to q, k, v, bias_scale and r (not to o, d). ``attn_mask``
(optional) is added to the logits: float (additive) or bool (True = attend,
as in ``F.scaled_dot_product_attention``), broadcastable to (B, H, Nq, Nk).

``sdpa.py`` (dense bias as the SDPA mask, the reference), ``svd.py``
(randomised low-rank factors of a dense bias), ``exact.py`` (exact rank-10
factors appended to q/k), ``triton.py`` (the fused kernel of
``triton_kernels.py``, imported lazily). ``..dispatch`` picks one by name.
"""
from .exact import clear_key_factor_cache, exact_bias_attention
from .sdpa import dense_geometric_bias, sdpa_bias_attention
from .svd import svd_bias_attention
from .triton import load_triton_module, triton_is_available, triton_path_attention

__all__ = [
    'clear_key_factor_cache', 'exact_bias_attention', 'dense_geometric_bias', 'sdpa_bias_attention',
    'svd_bias_attention', 'load_triton_module', 'triton_is_available', 'triton_path_attention'
]
