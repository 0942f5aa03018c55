"""Input checks and coordinate normalisation shared by the attention paths.

Shapes: q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); r (B, Nq, 3);
o, d (B, Nk, 3), (1, Nk, 3) or (Nk, 3); bias_scale (H,); dense_bias and
attn_mask broadcastable to (B, H, Nq, Nk). Coordinates in metres.
"""
import contextlib
from typing import Optional, Tuple

import torch
from torch import Tensor

from .geometry import batched_lines, point_line_dist2

VALID_BIAS_MODES = ('sdpa', 'svd', 'exact', 'triton', 'auto')
BIAS_PATHS = ('sdpa', 'svd', 'exact', 'triton')  # what 'auto' resolves among


def _shape(t: Optional[Tensor]):
    return None if t is None else tuple(t.shape)


def check_bias_mode(mode: str) -> str:
    if mode not in VALID_BIAS_MODES:
        raise ValueError(f'bias_mode must be one of {VALID_BIAS_MODES}, '
                         f'got {mode!r}')
    return mode


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    """q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); one dtype/device.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError('q, k, v must be 4-D (B, H, N, D); got q '
                         f'{_shape(q)}, k {_shape(k)}, v {_shape(v)}')
    if k.shape[:2] != q.shape[:2] or v.shape[:3] != k.shape[:3] or \
            k.shape[3] != q.shape[3]:
        raise ValueError('expected q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); '
                         f'got q {_shape(q)}, k {_shape(k)}, v {_shape(v)}')
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError('q, k, v must share one dtype; got '
                        f'{q.dtype}, {k.dtype}, {v.dtype}')
    if not (q.device == k.device == v.device):
        raise ValueError('q, k, v must be on one device; got '
                         f'{q.device}, {k.device}, {v.device}')


def check_geometry(q: Tensor, k: Tensor, r: Tensor, o: Tensor, d: Tensor, bias_scale: Tensor) -> Tuple[Tensor, Tensor]:
    """Validate r, o, d, bias_scale against q/k; return o, d as (Bk, Nk, 3)."""
    b, h, nq = q.shape[:3]
    nk = k.shape[2]
    if r is None or o is None or d is None or bias_scale is None:
        raise ValueError('the geometric bias needs r (B, Nq, 3), o and d '
                         '(B, Nk, 3) and bias_scale (H,); got r '
                         f'{_shape(r)}, o {_shape(o)}, d {_shape(d)}, '
                         f'bias_scale {_shape(bias_scale)}')
    if r.shape != (b, nq, 3):
        raise ValueError(f'r (ref points) must have shape (B, Nq, 3) = '
                         f'{(b, nq, 3)} to match q {_shape(q)}; got '
                         f'{_shape(r)}')
    if o.shape != d.shape:
        raise ValueError('key line origins o and directions d must have the '
                         f'same shape; got o {_shape(o)}, d {_shape(d)}')
    o, d = batched_lines(o, d)
    if o.dim() != 3 or o.shape[0] not in (1, b) or o.shape[1:] != (nk, 3):
        raise ValueError(f'key lines o, d must have shape (B, Nk, 3) = '
                         f'{(b, nk, 3)} or (Nk, 3) to match k {_shape(k)}; '
                         f'got {_shape(o)}')
    if bias_scale.shape != (h, ):
        raise ValueError(f'bias_scale must have shape (H,) = ({h},); got '
                         f'{_shape(bias_scale)}')
    for name, t in (('r', r), ('o', o), ('d', d), ('bias_scale', bias_scale)):
        if not t.is_floating_point():
            raise TypeError(f'{name} must be a floating tensor, got {t.dtype}')
        if t.device != q.device:
            raise ValueError(f'{name} is on {t.device} but q is on '
                             f'{q.device}')
    return o, d


def check_dense(name: str, t: Optional[Tensor], q: Tensor, k: Tensor) -> None:
    """``t`` must be 4-D and broadcastable to (B, H, Nq, Nk)."""
    if t is None:
        return
    full = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    if t.dim() != 4 or any(s not in (1, f) for s, f in zip(t.shape, full)):
        raise ValueError(f'{name} must have shape (B, H, Nq, Nk) = {full} '
                         f'(dims of size 1 broadcast); got {_shape(t)}')
    if t.device != q.device:
        raise ValueError(f'{name} is on {t.device} but q is on {q.device}')
    if t.dtype != torch.bool and not t.is_floating_point():
        raise TypeError(f'{name} must be float (additive) or bool, got '
                        f'{t.dtype}')


def additive(mask: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    """Bool mask (True = attend, SDPA convention) -> additive float mask."""
    if mask is None or mask.is_floating_point():
        return mask
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill_(~mask, float('-inf'))


def work_dtype(*ts: Optional[Tensor]) -> torch.dtype:
    """fp64 if any input is fp64, else fp32 (geometry is never half)."""
    return torch.float64 if any(
        t is not None and t.dtype == torch.float64 for t in ts) \
        else torch.float32


def no_autocast(device: torch.device):
    """Disable autocast so bias matmuls/elementwise ops stay in fp32."""
    if device.type in ('cuda', 'cpu'):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def key_centre(o: Tensor) -> Tensor:
    """(Bk, Nk, 3) -> (Bk, 1, 3) centroid of the line origins (no grad)."""
    return o.detach().mean(dim=1, keepdim=True)


def to_key_frame(x: Tensor, centre: Tensor, length_scale: float) -> Tensor:
    """``(x - centre) / length_scale``: the one centring/scaling of every path.

    dist2 is translation invariant and scales as 1/L^2, so dist2 of the
    results equals dist2(r/L, line/L). x (..., 3) and centre (Bk, 1, 3) in
    one dtype; gradients flow to x.
    """
    return (x - centre) * (1.0 / float(length_scale))


def normalise(r: Optional[Tensor], o: Tensor, d: Tensor, length_scale: float, dtype: torch.dtype):
    """Points and lines in the key frame (``to_key_frame``), in ``dtype``.

    Returns r_n (B, Nq, 3) (None when r is None), o_n (Bk, Nk, 3),
    d (Bk, Nk, 3) and the centre (Bk, 1, 3). Gradients flow to r only.
    """
    o = o.detach().to(dtype)
    centre = key_centre(o)
    r_n = None if r is None else to_key_frame(r.to(dtype), centre, length_scale)
    return r_n, to_key_frame(o, centre, length_scale), d.detach().to(dtype), \
        centre


def geometric_dist2(r: Tensor, o: Tensor, d: Tensor, length_scale: float) -> Tensor:
    """(B, Nq, Nk) dist2(r/L, line/L), fp32 (fp64 if inputs are fp64)."""
    dtype = work_dtype(r, o, d)
    r_n, o_n, d_n, _ = normalise(r, o, d, length_scale, dtype)
    return point_line_dist2(r_n, o_n, d_n)
