"""Attention with a low-rank bias ``B = a b^T`` folded into q and k.

``softmax(q k^T s + a b^T) v == softmax([q, a/s] [k, b]^T s) v`` with
s = 1/sqrt(D): the bias rides in extra head-dim columns and SDPA runs without
a mask, so flash/cuDNN kernels apply. Here ``a`` already carries the 1/s
factor (callers multiply the q-side factor by sqrt(D)).

Precision: in bf16/fp16 the factor product cancels (its terms are much larger
than the result), so by default a half-precision factor ``x`` is split into
``hi = x.to(half)`` and ``lo = (x - hi).to(half)`` and the bias is carried as
``a_hi b_hi + a_lo b_hi + a_hi b_lo`` (three times the columns, ~16 bits of
mantissa instead of 8). Columns are zero-padded so the q/k head dim is a
multiple of 8 (kernel alignment).

Value head dim: flash needs equal q/k/v head dims, cuDNN and the
mem-efficient kernel accept d_v != d_qk, the CPU fused kernel needs equal
dims. ``pad_v=None`` asks SDPA's own backend choice
(``torch._fused_sdp_choice``) for v as is and v zero-padded to d_qk, and pads
only when that gets a preferred kernel (cuDNN > flash > efficient > math);
the output is then sliced back to d_v.
"""
import math
import warnings
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .path_inputs import additive, no_autocast

HALF_DTYPES = (torch.float16, torch.bfloat16)
# SDPBackend enum values: math 0, flash 1, efficient 2, cudnn 3.
_BACKEND_PREFERENCE = {3: 3, 1: 2, 2: 1, 0: 0}


def default_compensated(dtype: torch.dtype) -> bool:
    """Split factors into hi/lo parts when the attention dtype is half."""
    return dtype in HALF_DTYPES


def tail_width(head_dim: int, rank: int, compensated: bool) -> int:
    """Columns appended to q/k: factors (x3 when split) + zero padding."""
    cols = rank * (3 if compensated else 1)
    return cols + (-(head_dim + cols)) % 8


def _split(fac: Tensor, dtype: torch.dtype, q_side: bool, compensated: bool) -> List[Tensor]:
    if not compensated:
        return [fac.to(dtype)]
    hi = fac.to(dtype)
    # lo is treated as a constant: d/da (a_hi b_hi + a_lo b_hi + a_hi b_lo)
    # must be b_hi + b_lo, which the two `hi` columns already give (and
    # likewise on the k side).
    lo = (fac.detach() - hi.detach().to(fac.dtype)).to(dtype)
    return [hi, lo, hi] if q_side else [hi, hi, lo]


def _zeros(like: Tensor, shape) -> Tensor:
    return like.new_zeros(()).expand(*shape)


def query_with_factors(q: Tensor, a: Tensor, compensated: bool) -> Tensor:
    """q (B, H, Nq, D), a (B, H, Nq, R) -> (B, H, Nq, D + tail_width)."""
    parts = [q] + _split(a, q.dtype, True, compensated)
    pad = tail_width(q.shape[-1], a.shape[-1], compensated) - \
        a.shape[-1] * (3 if compensated else 1)
    if pad:
        parts.append(_zeros(q, (*q.shape[:-1], pad)))
    return torch.cat(parts, -1)


def key_factor_tail(b: Tensor, head_dim: int, dtype: torch.dtype, compensated: bool) -> Tensor:
    """b (Bk, Hk, Nk, R) -> (Bk, Hk, Nk, tail_width) columns for k."""
    parts = _split(b, dtype, False, compensated)
    pad = tail_width(head_dim, b.shape[-1], compensated) - \
        b.shape[-1] * (3 if compensated else 1)
    if pad:
        parts.append(b.new_zeros((*b.shape[:-1], pad), dtype=dtype))
    return torch.cat(parts, -1)


def key_with_tail(k: Tensor, tail: Tensor) -> Tensor:
    """k (B, H, Nk, D), tail (Bk|1, Hk|1, Nk, T) -> (B, H, Nk, D + T)."""
    return torch.cat([k, tail.expand(*k.shape[:-1], tail.shape[-1])], -1)


def _choose_pad_v(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], dropout_p: float, scale: float) -> bool:
    if v.shape[-1] == q.shape[-1]:
        return False
    # A stand-in for the padded v with unit last stride (no allocation).
    v_pad = v.new_zeros(q.shape[-1]).expand(*v.shape[:-1], q.shape[-1])
    try:
        with warnings.catch_warnings():  # "kernel not used because ..."
            warnings.simplefilter('ignore')
            keep = torch._fused_sdp_choice(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
            pad = torch._fused_sdp_choice(q, k, v_pad, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    except (AttributeError, RuntimeError, TypeError):
        return q.device.type != 'cuda'
    return _BACKEND_PREFERENCE.get(int(pad), -1) > \
        _BACKEND_PREFERENCE.get(int(keep), -1)


def factored_sdpa(q_cat: Tensor,
                  k_cat: Tensor,
                  v: Tensor,
                  head_dim: int,
                  attn_mask: Optional[Tensor] = None,
                  dropout_p: float = 0.0,
                  pad_v: Optional[bool] = None) -> Tensor:
    """SDPA over concatenated q/k with softmax scale 1/sqrt(head_dim).

    Returns (B, H, Nq, Dv).
    """
    scale = 1.0 / math.sqrt(head_dim)
    dv = v.shape[-1]
    if pad_v is None:
        pad_v = _choose_pad_v(q_cat, k_cat, v, attn_mask, dropout_p, scale)
    if pad_v and dv != q_cat.shape[-1]:
        v = F.pad(v, (0, q_cat.shape[-1] - dv))
    out = F.scaled_dot_product_attention(q_cat, k_cat, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    return out[..., :dv] if out.shape[-1] != dv else out


def low_rank_bias_attention(q: Tensor,
                            k: Tensor,
                            v: Tensor,
                            a: Tensor,
                            tail: Tensor,
                            compensated: bool,
                            attn_mask: Optional[Tensor] = None,
                            dropout_p: float = 0.0,
                            pad_v: Optional[bool] = None) -> Tensor:
    """The closing block of the ``exact`` and ``svd`` paths.

    q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); a (B, H, Nq, R) the
    q-side factors (already times sqrt(D)); tail (Bk|1, Hk|1, Nk, T) the
    k-side columns from ``key_factor_tail``; attn_mask float/bool or None.
    Returns (B, H, Nq, Dv).
    """
    with no_autocast(q.device):
        q_cat = query_with_factors(q, a, compensated)
        mask = additive(attn_mask, q.dtype)
        if mask is not None:
            mask = mask.to(q.dtype)
    k_cat = key_with_tail(k, tail)
    return factored_sdpa(q_cat, k_cat, v, q.shape[-1], mask, dropout_p, pad_v)
