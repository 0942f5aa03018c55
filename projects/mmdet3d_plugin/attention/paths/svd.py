"""The ``svd`` path: a dense bias -> randomised rank-R factors -> SDPA.

For a bias M (Nq, Nk) (per batch for the geometric bias, which is
``-bias_scale[h] * dist2`` so one factorisation serves all heads; per batch
and head for a caller's dense bias), ``torch.svd_lowrank`` of ``M.detach()``
gives the top-R right singular vectors V (Nk, R) and values S. The bias is
replaced by its projection ``(M V) V^T``, carried as q-side ``M V S^-1/2``
and k-side ``V S^1/2`` (balanced magnitudes, safe in fp16). Gradients flow
through ``M V`` only (V is a constant): the dense gradient projected onto
span(V), exact when the perturbations of M keep its row space (true for the
geometric bias, whose rows all lie in span(psi(o, d)), once Nq points span
it). When Nq <= R (or Nk <= R) the exact factorisation ``I . M`` (``M . I``)
is used instead, so tiny query/key sets get exact values and gradients.
"""
import logging
import math
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..factored_sdpa import default_compensated, key_factor_tail, low_rank_bias_attention
from ..geometry import FACTOR_RANK
from ..path_inputs import check_dense, check_geometry, check_qkv, geometric_dist2, no_autocast, work_dtype

SVD_ERROR_WARN = 1e-2  # relative Frobenius error above which we warn
SVD_OVERSAMPLE = 6
SVD_NITER = 2


def right_factors(m: Tensor, rank: int) -> Tuple[Tensor, Tensor]:
    """Randomised top singular pairs of (..., Nq, Nk) ``m`` (no grad).

    Returns V (..., Nk, R) orthonormal columns and S (..., R), R =
    min(rank, Nq, Nk); never a full SVD.
    """
    m = m.detach()
    nq, nk = m.shape[-2:]
    q = min(rank + SVD_OVERSAMPLE, nq, nk)
    _, s, v = torch.svd_lowrank(m, q=q, niter=SVD_NITER)
    keep = min(rank, q)
    return v[..., :keep], s[..., :keep]


def relative_error(m: Tensor, v: Tensor) -> float:
    """||M - M V V^T||_F / ||M||_F over all batches (no grad)."""
    with torch.no_grad():
        m = m.detach()
        resid = m - (m @ v) @ v.transpose(-1, -2)
        return float(resid.norm() / m.norm().clamp_min(1e-30))


def report_error(err: float, rank: int) -> None:
    """Log the factorisation error once via mmengine; warn when large."""
    from mmengine.logging import print_log
    msg = (f'GeometricBiasAttention svd path: rank-{rank} relative '
           f'factorisation error {err:.3e}')
    print_log(msg, logger='current', level=logging.INFO)
    if err > SVD_ERROR_WARN:
        warn = (f'{msg} exceeds {SVD_ERROR_WARN:g}; raise svd_rank or use '
                "bias_mode='sdpa' (the geometric bias has rank <= 10)")
        print_log(warn, logger='current', level=logging.WARNING)
        warnings.warn(warn)


def _balanced(m: Tensor, v: Tensor, s: Tensor) -> Tuple[Tensor, Tensor]:
    """(M V S^-1/2, V S^1/2), S clamped away from 0."""
    floor = s[..., :1] * 1e-12 + torch.finfo(s.dtype).tiny
    root = s.clamp_min(floor).sqrt()
    return (m @ v) / root[..., None, :], v * root[..., None, :]


def low_rank_factors(m: Tensor, rank: int, check_error: bool = False) -> Tuple[Tensor, Tensor]:
    """(..., Nq, Nk) -> q-side (..., Nq, R'), k-side (..., Nk, R'), R' <= rank.

    Differentiable in ``m`` (see the module docstring).
    """
    nq, nk = m.shape[-2:]
    if min(nq, nk) <= rank:
        if check_error:
            report_error(0.0, rank)
        if nq <= nk:
            eye = torch.eye(nq, dtype=m.dtype, device=m.device)
            return eye.expand(*m.shape[:-2], nq, nq), m.transpose(-1, -2)
        eye = torch.eye(nk, dtype=m.dtype, device=m.device)
        return m, eye.expand(*m.shape[:-2], nk, nk)
    vecs, vals = right_factors(m, rank)
    if check_error:
        report_error(relative_error(m, vecs), rank)
    return _balanced(m, vecs, vals)


def svd_bias_attention(q: Tensor,
                       k: Tensor,
                       v: Tensor,
                       r: Optional[Tensor],
                       o: Optional[Tensor],
                       d: Optional[Tensor],
                       bias_scale: Optional[Tensor],
                       length_scale: float = 10.0,
                       *,
                       rank: int = FACTOR_RANK,
                       dense_bias: Optional[Tensor] = None,
                       attn_mask: Optional[Tensor] = None,
                       dropout_p: float = 0.0,
                       check_error: bool = False,
                       compensated: Optional[bool] = None,
                       pad_v: Optional[bool] = None) -> Tensor:
    """Rank-``rank`` factors of the dense bias concatenated to q/k -> SDPA.

    The bias is the geometric one (r given) plus ``dense_bias``
    (B, H, Nq, Nk) (given). ``check_error`` computes, logs and (above
    ``SVD_ERROR_WARN``) warns about the relative factorisation error.
    """
    check_qkv(q, k, v)
    check_dense('dense_bias', dense_bias, q, k)
    check_dense('attn_mask', attn_mask, q, k)
    if r is None and dense_bias is None:
        raise ValueError('svd path needs r, o, d (geometric bias) or '
                         'dense_bias (B, H, Nq, Nk)')
    if int(rank) < 1:
        raise ValueError(f'svd_rank must be >= 1, got {rank}')
    b, h, nq, head_dim = q.shape
    nk = k.shape[2]
    comp = default_compensated(q.dtype) if compensated is None \
        else bool(compensated)
    with no_autocast(q.device):
        if r is not None:
            o, d = check_geometry(q, k, r, o, d, bias_scale)
            dist2 = geometric_dist2(r, o, d, length_scale)  # (B, Nq, Nk)
        if dense_bias is None:
            # One factorisation of dist2 per batch serves every head.
            qf, kf = low_rank_factors(dist2, rank, check_error)
            scale = bias_scale.to(qf.dtype) * (-math.sqrt(head_dim))
            a = qf[:, None] * scale[None, :, None, None]
            kf = kf[:, None]
        else:
            full = dense_bias.to(work_dtype(dense_bias)).expand(b, h, nq, nk)
            if r is not None:
                full = full + dist2[:, None] * (-bias_scale.to(dist2.dtype))[None, :, None, None]
            qf, kf = low_rank_factors(full, rank, check_error)
            a = qf * math.sqrt(head_dim)
        tail = key_factor_tail(kf, head_dim, q.dtype, comp)
    return low_rank_bias_attention(q, k, v, a, tail, comp, attn_mask, dropout_p, pad_v)
