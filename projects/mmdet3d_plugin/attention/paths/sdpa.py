"""The ``sdpa`` path (the reference): the dense bias as the SDPA mask.

O(B*H*Nq*Nk) memory; arguments as in ``paths/__init__.py``.
"""
import math
from typing import Optional

import torch.nn.functional as F
from torch import Tensor

from ..path_inputs import additive, check_dense, check_geometry, check_qkv, geometric_dist2, no_autocast, work_dtype


def dense_geometric_bias(r: Tensor, o: Tensor, d: Tensor, bias_scale: Tensor, length_scale: float) -> Tensor:
    """(B, H, Nq, Nk) ``-bias_scale[h] * dist2(r/L, line/L)`` in fp32."""
    dist2 = geometric_dist2(r, o, d, length_scale)
    scale = bias_scale.to(dist2.dtype)
    return dist2[:, None] * (-scale)[None, :, None, None]


def sdpa_bias_attention(q: Tensor,
                        k: Tensor,
                        v: Tensor,
                        r: Optional[Tensor],
                        o: Optional[Tensor],
                        d: Optional[Tensor],
                        bias_scale: Optional[Tensor],
                        length_scale: float = 10.0,
                        *,
                        dense_bias: Optional[Tensor] = None,
                        attn_mask: Optional[Tensor] = None,
                        dropout_p: float = 0.0) -> Tensor:
    """Dense bias -> ``F.scaled_dot_product_attention(attn_mask=bias)``.

    The bias is the geometric one (when r is given) plus ``dense_bias``
    (B, H, Nq, Nk) (when given), built in fp32 and cast to q's dtype.
    """
    check_qkv(q, k, v)
    check_dense('dense_bias', dense_bias, q, k)
    check_dense('attn_mask', attn_mask, q, k)
    if r is None and dense_bias is None:
        raise ValueError('sdpa path needs r, o, d (geometric bias) or '
                         'dense_bias (B, H, Nq, Nk)')
    with no_autocast(q.device):
        bias = None
        if r is not None:
            o, d = check_geometry(q, k, r, o, d, bias_scale)
            bias = dense_geometric_bias(r, o, d, bias_scale, length_scale)
        if dense_bias is not None:
            dense = dense_bias.to(work_dtype(dense_bias))
            bias = dense if bias is None else bias + dense
        mask = additive(attn_mask, bias.dtype)
        if mask is not None:
            bias = bias + mask
        bias = bias.to(q.dtype)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=1.0 / math.sqrt(q.shape[-1]))
