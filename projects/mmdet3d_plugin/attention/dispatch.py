"""Choosing a path: ``resolve_mode`` ('auto' -> a concrete path), ``run_path``
(one concrete path, no resolving) and ``bias_attention`` (both).

Arguments of the paths: see ``paths/__init__.py``.
"""
from typing import Optional

from torch import Tensor

from .geometry import FACTOR_RANK
from .path_inputs import check_bias_mode
from .paths import (exact_bias_attention, load_triton_module, sdpa_bias_attention, svd_bias_attention,
                    triton_is_available, triton_path_attention)

TRITON_HEAD_DIMS = (32, 64)  # head dims for which 'auto' picks the kernel


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
    are returned unchanged. Depends only on q's device and head dim, v's
    head dim and whether there is a dense bias, a mask or dropout.
    """
    check_bias_mode(mode)
    if mode != 'auto':
        return mode
    if dense_bias is not None:
        return 'sdpa'
    dv = q.shape[-1] if v is None else v.shape[-1]
    if (q.device.type == 'cuda' and attn_mask is None and dropout_p == 0 and q.shape[-1] in TRITON_HEAD_DIMS
            and dv == q.shape[-1]):
        if load_triton_module(required=False) is not None and \
                triton_is_available(q.device):
            return 'triton'
    return 'exact'


def run_path(path: str,
             q: Tensor,
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
             dropout_p: float = 0.0,
             svd_rank: int = FACTOR_RANK,
             check_svd_error: bool = False) -> Tensor:
    """Run the concrete ``path`` ('sdpa', 'svd', 'exact' or 'triton')."""
    if path in ('exact', 'triton') and dense_bias is not None:
        raise ValueError(f"bias_mode='{path}' builds the bias from ref points and key "
                         "lines and cannot take dense_bias; use bias_mode='sdpa' or "
                         "'svd' for a dense (B, H, Nq, Nk) bias")
    geo = (r, o, d, bias_scale)
    if path == 'sdpa':
        return sdpa_bias_attention(
            q, k, v, *geo, length_scale, dense_bias=dense_bias, attn_mask=attn_mask, dropout_p=dropout_p)
    if path == 'svd':
        return svd_bias_attention(
            q,
            k,
            v,
            *geo,
            length_scale,
            rank=svd_rank,
            dense_bias=dense_bias,
            attn_mask=attn_mask,
            dropout_p=dropout_p,
            check_error=check_svd_error)
    if path == 'exact':
        return exact_bias_attention(q, k, v, *geo, length_scale, attn_mask=attn_mask, dropout_p=dropout_p)
    if path == 'triton':
        return triton_path_attention(q, k, v, *geo, length_scale, attn_mask=attn_mask, dropout_p=dropout_p)
    raise ValueError(f"run_path: path must be one of 'sdpa', 'svd', 'exact', "
                     f"'triton' (resolve 'auto' first); got {path!r}")


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
    """Resolve ``mode`` (see ``VALID_BIAS_MODES``) and run that path."""
    path = resolve_mode(mode, q, v, dense_bias, attn_mask, dropout_p)
    return run_path(
        path,
        q,
        k,
        v,
        r,
        o,
        d,
        bias_scale,
        length_scale,
        dense_bias=dense_bias,
        attn_mask=attn_mask,
        dropout_p=dropout_p,
        svd_rank=svd_rank,
        check_svd_error=check_svd_error)
