"""The ``exact`` path: the bias's exact rank-10 factors appended to q and k.

``-bias_scale[h] * sqrt(D) * phi(r)`` goes into extra q columns and
``psi(o, d)`` into extra k columns, so SDPA (flash/cuDNN) runs without a mask
and the Nq x Nk bias never exists. Arguments as in ``paths/__init__.py``.
"""
import math
from typing import Optional

import torch
from torch import Tensor

from ..factored_sdpa import default_compensated, key_factor_tail, low_rank_bias_attention
from ..geometry import key_factors, query_factors
from ..key_factor_cache import KeyFactorCache, clear_key_factor_caches
from ..path_inputs import check_dense, check_geometry, check_qkv, no_autocast, normalise, to_key_frame, work_dtype

_key_tail_cache = KeyFactorCache()


def clear_key_factor_cache() -> None:
    """Drop the cached key-side factors of every path (they hold refs to (o, d))."""
    clear_key_factor_caches()


def _key_tail(o: Tensor, d: Tensor, o3: Tensor, d3: Tensor, length_scale, dtype: torch.dtype, compensated: bool,
              head_dim: int):
    """Cached (tail (Bk, 1, Nk, T), centre (Bk, 1, 3)) for lines (o, d).

    ``o``/``d`` are the caller's tensors (cache identity), ``o3``/``d3``
    their (Bk, Nk, 3) views. The line origin is moved to the foot of the
    perpendicular from the centroid (same line, smaller factors).
    """
    key = (float(length_scale), dtype, compensated, head_dim)

    def build():
        with torch.no_grad():
            _, o_n, dd, centre = normalise(None, o3, d3, length_scale, work_dtype(o3, d3))
            o_n = o_n - (o_n * dd).sum(-1, keepdim=True) * dd
            psi = key_factors(o_n, dd)[:, None]  # (Bk, 1, Nk, 10)
            return key_factor_tail(psi, head_dim, dtype, compensated), centre

    return _key_tail_cache.get_or_build(o, d, key, build)


def exact_bias_attention(q: Tensor,
                         k: Tensor,
                         v: Tensor,
                         r: Tensor,
                         o: Tensor,
                         d: Tensor,
                         bias_scale: Tensor,
                         length_scale: float = 10.0,
                         *,
                         attn_mask: Optional[Tensor] = None,
                         dropout_p: float = 0.0,
                         compensated: Optional[bool] = None,
                         pad_v: Optional[bool] = None) -> Tensor:
    """Exact rank-10 factors phi(r), psi(o, d) concatenated to q/k -> SDPA.

    ``-bias_scale[h] * sqrt(D)`` is folded into the q-side factor, the key
    side (psi, split and padded) is computed once per (o, d) tensors and
    reused across calls (decoder layers). Coordinates are centred at the key
    centroid and divided by ``length_scale``. ``compensated`` (default: True
    for bf16/fp16) carries each factor as hi + lo half parts: q/k head dim
    D + 30 padded to a multiple of 8 (64 for D = 32) instead of D + 10
    (48), at bias precision ~1e-5 instead of ~4e-3 of the largest factor
    product. ``pad_v``: see ``factored_sdpa``.

    Precision note (bf16/fp16): SDPA returns dq in the attention dtype, and
    the gradients to bias_scale and r are contracted from dq's factor
    columns, whose terms (~|r - centre|^2 / L^2) cancel down to the attended
    distances. Outputs and q/k/v gradients match the dense path's error;
    the bias_scale / r gradients are ~3-10x noisier (relative, measured on
    CPU; see tests/attention/test_paths.py). The triton path keeps these
    reductions in fp32.
    """
    check_qkv(q, k, v)
    check_dense('attn_mask', attn_mask, q, k)
    o3, d3 = check_geometry(q, k, r, o, d, bias_scale)
    head_dim = q.shape[-1]
    comp = default_compensated(q.dtype) if compensated is None \
        else bool(compensated)
    with no_autocast(q.device):
        tail, centre = _key_tail(o, d, o3, d3, length_scale, q.dtype, comp, head_dim)
        wdtype = centre.dtype
        phi = query_factors(to_key_frame(r.to(wdtype), centre, length_scale))
        a = phi[:, None] * (bias_scale.to(wdtype) * (-math.sqrt(head_dim)))[None, :, None, None]
    return low_rank_bias_attention(q, k, v, a, tail, comp, attn_mask, dropout_p, pad_v)
