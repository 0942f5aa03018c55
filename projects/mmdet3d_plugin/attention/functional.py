"""Attention with the geometric bias: the ``sdpa``, ``exact`` and ``triton``
paths and the dispatcher (``svd`` lives in ``low_rank.py``).

Every path takes the same arguments: q (B, H, Nq, D), k (B, H, Nk, D),
v (B, H, Nk, Dv); r (B, Nq, 3) query points; o, d (B, Nk, 3) or (Nk, 3) key
lines (d unit); bias_scale (H,); length_scale (metres). It returns
(B, H, Nq, Dv) =
    softmax(q k^T / sqrt(D) - bias_scale[h] * dist2(r/L, line/L)) v
with gradients to q, k, v, bias_scale and r (not to o, d).
``attn_mask`` (optional) is added to the logits: float (additive) or bool
(True = attend, as in ``F.scaled_dot_product_attention``), broadcastable to
(B, H, Nq, Nk).
"""
import importlib
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .factored_sdpa import (default_compensated, factored_sdpa,
                            key_factor_tail, key_with_tail,
                            query_with_factors)
from .geometry import FACTOR_RANK, key_factors, query_factors
from .key_factor_cache import KeyFactorCache
from .low_rank import svd_bias_attention
from .path_inputs import (additive, check_bias_mode, check_dense,
                          check_geometry, check_qkv, geometric_dist2,
                          key_centre, no_autocast, work_dtype)

TRITON_MODULE = __package__ + '.triton_attention'
TRITON_HEAD_DIMS = (32, 64)
_key_tail_cache = KeyFactorCache()


def clear_key_factor_cache() -> None:
    """Drop the cached key-side factors (they hold refs to (o, d))."""
    _key_tail_cache.clear()


def dense_geometric_bias(r: Tensor, o: Tensor, d: Tensor, bias_scale: Tensor,
                         length_scale: float) -> Tensor:
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

    The reference path: O(B*H*Nq*Nk) memory. The bias is the geometric one
    (when r is given) plus ``dense_bias`` (B, H, Nq, Nk) (when given), built
    in fp32 and cast to q's dtype.
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
        q, k, v, attn_mask=bias, dropout_p=dropout_p,
        scale=1.0 / math.sqrt(q.shape[-1]))


def _key_tail(o: Tensor, d: Tensor, o3: Tensor, d3: Tensor, length_scale,
              dtype: torch.dtype, compensated: bool, head_dim: int):
    """Cached (tail (Bk, 1, Nk, T), centre (Bk, 1, 3)) for lines (o, d).

    ``o``/``d`` are the caller's tensors (cache identity), ``o3``/``d3``
    their (Bk, Nk, 3) views. The line origin is moved to the foot of the
    perpendicular from the centroid (same line, smaller factors).
    """
    key = (float(length_scale), dtype, compensated, head_dim)

    def build():
        wdtype = work_dtype(o3, d3)
        with torch.no_grad():
            dd = d3.to(wdtype)
            centre = key_centre(o3.to(wdtype))
            o_n = (o3.to(wdtype) - centre) / float(length_scale)
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
        tail, centre = _key_tail(o, d, o3, d3, length_scale, q.dtype, comp,
                                 head_dim)
        wdtype = centre.dtype
        phi = query_factors((r.to(wdtype) - centre) / float(length_scale))
        a = phi[:, None] * (bias_scale.to(wdtype) *
                            (-math.sqrt(head_dim)))[None, :, None, None]
        q_cat = query_with_factors(q, a, comp)
        mask = additive(attn_mask, q.dtype)
        if mask is not None:
            mask = mask.to(q.dtype)
    k_cat = key_with_tail(k, tail)
    return factored_sdpa(q_cat, k_cat, v, head_dim, mask, dropout_p, pad_v)


def load_triton_module(required: bool):
    """The Triton kernel module, or None (when not ``required``) if absent.

    Raises a RuntimeError naming the missing file when ``required``.
    """
    try:
        return importlib.import_module(TRITON_MODULE)
    except ImportError as err:
        if not required:
            return None
        raise RuntimeError(
            "bias_mode='triton' needs projects/mmdet3d_plugin/attention/"
            'triton_attention.py (triton_bias_attention, '
            f'triton_is_available), which failed to import: {err!r}. Use '
            "bias_mode='exact' or 'auto'.") from err


def triton_path_attention(q: Tensor,
                          k: Tensor,
                          v: Tensor,
                          r: Tensor,
                          o: Tensor,
                          d: Tensor,
                          bias_scale: Tensor,
                          length_scale: float = 10.0,
                          *,
                          attn_mask: Optional[Tensor] = None,
                          dropout_p: float = 0.0) -> Tensor:
    """Fused Triton kernel (``triton_attention.py``); r, o, d centred at
    the key centroid, divided by ``length_scale``, fp32."""
    check_qkv(q, k, v)
    o3, d3 = check_geometry(q, k, r, o, d, bias_scale)
    if attn_mask is not None or dropout_p > 0:
        raise ValueError("bias_mode='triton' supports neither attn_mask/"
                         "key_padding_mask nor attention dropout; use "
                         "bias_mode='exact' (or 'auto')")
    mod = load_triton_module(required=True)
    if not mod.triton_is_available(q.device):
        raise RuntimeError(f'Triton is not available for device {q.device} '
                           '(needs CUDA, or TRITON_INTERPRET=1 on CPU)')
    with no_autocast(q.device):
        o3 = o3.detach().float()
        centre = key_centre(o3)
        inv = 1.0 / float(length_scale)
        b, nk = q.shape[0], k.shape[2]
        r_n = ((r.float() - centre) * inv).contiguous()
        # Lines shared by the batch stay stride-0 views (the kernel then
        # builds their factors once).
        o_n = ((o3 - centre) * inv).expand(b, nk, 3)
        d_n = d3.detach().float().expand(b, nk, 3)
        scale = bias_scale.float()
    return mod.triton_bias_attention(q, k, v, r_n, o_n, d_n, scale,
                                     1.0 / math.sqrt(q.shape[-1]))


def resolve_mode(mode: str,
                 q: Tensor,
                 v: Optional[Tensor] = None,
                 dense_bias: Optional[Tensor] = None,
                 attn_mask: Optional[Tensor] = None,
                 dropout_p: float = 0.0) -> str:
    """The concrete path for ``mode``; ``auto`` -> triton or exact.

    ``auto`` picks ``triton`` on CUDA when the kernel module imports,
    ``triton_is_available`` says yes, there is no mask or dropout, and the
    head dim is 32 or 64; otherwise ``exact``. With a ``dense_bias`` it picks
    ``sdpa`` (exact for any bias; ``svd`` must be asked for). Explicit modes
    are returned unchanged.
    """
    check_bias_mode(mode)
    if mode != 'auto':
        return mode
    if dense_bias is not None:
        return 'sdpa'
    dv = q.shape[-1] if v is None else v.shape[-1]
    if (q.device.type == 'cuda' and attn_mask is None and dropout_p == 0
            and q.shape[-1] in TRITON_HEAD_DIMS and dv == q.shape[-1]):
        mod = load_triton_module(required=False)
        if mod is not None and mod.triton_is_available(q.device):
            return 'triton'
    return 'exact'


def bias_attention(q: Tensor,
                   k: Tensor,
                   v: Tensor,
                   r: Optional[Tensor],
                   o: Optional[Tensor],
                   d: Optional[Tensor],
                   bias_scale: Optional[Tensor],
                   length_scale: float = 10.0,
                   *,
                   mode: str = 'auto',
                   dense_bias: Optional[Tensor] = None,
                   attn_mask: Optional[Tensor] = None,
                   dropout_p: float = 0.0,
                   svd_rank: int = FACTOR_RANK,
                   check_svd_error: bool = False) -> Tensor:
    """Dispatch to the path named by ``mode`` (see ``VALID_BIAS_MODES``)."""
    mode = resolve_mode(mode, q, v, dense_bias, attn_mask, dropout_p)
    if mode in ('exact', 'triton') and dense_bias is not None:
        raise ValueError(
            f"bias_mode='{mode}' builds the bias from ref points and key "
            "lines and cannot take dense_bias; use bias_mode='sdpa' or "
            "'svd' for a dense (B, H, Nq, Nk) bias")
    geo = (r, o, d, bias_scale)
    if mode == 'sdpa':
        return sdpa_bias_attention(
            q, k, v, *geo, length_scale, dense_bias=dense_bias,
            attn_mask=attn_mask, dropout_p=dropout_p)
    if mode == 'svd':
        return svd_bias_attention(
            q, k, v, *geo, length_scale, rank=svd_rank, dense_bias=dense_bias,
            attn_mask=attn_mask, dropout_p=dropout_p,
            check_error=check_svd_error)
    if mode == 'exact':
        return exact_bias_attention(
            q, k, v, *geo, length_scale, attn_mask=attn_mask,
            dropout_p=dropout_p)
    return triton_path_attention(
        q, k, v, *geo, length_scale, attn_mask=attn_mask,
        dropout_p=dropout_p)
