"""Fused flash-style Triton kernels for attention with the geometric point-to-line bias.

    out[b,h,i] = softmax_j(sm_scale * q_i.k_j - bias_scale[h] * dist2(r_i, line(o_j, d_j))) @ v
    dist2(r, line(o, d)) = |r - o|^2 - ((r - o).d)^2

The Nq x Nk bias never exists in memory. Its exact rank-10 factors (padded to 16), with phi . psi = dist2:
psi(o, d) (B or 1, Nk, 16) from a small kernel once per set of key lines (``key_factors``: cached, the
decoder layers share the lines), and A = -bias_scale[h] * phi(r) / sm_scale (B, H, Nq, 16) in the forward
kernel's registers, from r mapped to the key frame there ((r - centre) / length scale); the forward writes A
out only for the backward. Inside the tile loop the bias tile A psi^T is
accumulated on the tensor cores in fp32, chained into the same accumulator as q k^T, so the
per-score CUDA-core work (exp2, max, sum, casts) is that of bias-free flash attention:

* factor_precision 'bf16x3' (default for fp16/bf16 q/k/v): fp32 factors split into bf16 hi + lo
  and accumulated as lo.hi + hi.lo + hi.hi (3 MMAs of K=16): ~2^-16 relative error per factor
  product, against 2^-8 for a bf16 dense bias.
* 'tf32x3' (default for fp32): Triton's 3-pass TF32 dot on fp32 factors (fp32-level products).

With s = q.k + A.psi, p = exp2(s * sm_scale * log2(e) - lse2). When a gradient is wanted the forward
saves the output, and in one fp32 buffer (``_f32_rows``) an fp32 copy of it (for delta), the base-2 log-sum-exp
and room for delta (each (B, H, Nq)). When the query
blocks alone would leave SMs idle (batch-1 inference), the forward splits the keys over several
programs per query block and merges their outputs by log-sum-exp (flash-decoding, ``kv_splits``) within the
same launch: the split of a block that finishes last merges them.
The backward is
flash-attention-2 style: a small kernel writes delta = rowsum(dO * O), then a dq kernel looping over key blocks
per query block, which also accumulates G_i = sum_j dS_ij psi_j (tensor cores), and a dk/dv kernel looping over
query blocks per key block run side by side on two CUDA streams (the dq kernel's last wave of programs leaves
SMs idle that dk/dv programs fill). dA = sm_scale * G, and a last small kernel maps dA to
d r (through the polynomial phi, summed over heads) and to per-(b, query block, h) partial sums of
d bias_scale, added up in torch: deterministic, no atomics.

Layout follows Triton's fused-attention tutorial: top-level ``@triton.jit`` kernels, the three main
ones under ``@triton.autotune``. Compiled launches go through ``CompiledLaunchCache`` (triton_launch_cache.py):
Triton's per-call binding and autotuner lookup only for a new argument set.
This module imports triton at its top; ``paths/triton.py`` imports
it lazily, so the package (and every other path) imports without Triton.
"""
import contextlib
import functools
import math
from typing import Callable, NamedTuple

import torch
import triton
import triton.language as tl

from ..geometry import FACTOR_RANK, batched_lines
from ..key_factor_cache import KeyFactorCache
from ..path_inputs import key_centre
from .triton import interpreting, triton_is_available
from .triton_launch_cache import CompiledLaunchCache, on_stream

__all__ = [
    'triton_bias_attention', 'fused_attention', 'attention_with_keys', 'key_factors', 'KeyFactors', 'split_factors',
    'check_kernel_limits', 'autotune_winners', 'kernel_configs', 'forced_config', 'widen_configs', 'KERNEL_RANK',
    'kv_splits', 'forced_kv_splits', 'serial_backward', 'COMPILED'
]


def _backport_interpreter_scalar_index() -> None:
    """TRITON_INTERPRET=1 only: Triton's interpreter before 3.7 turns a scalar kernel argument into an index
    (e.g. ``range(H)``) with ``int()`` of a 1-element array, which numpy >= 2.5 refuses ("only 0-dimensional
    arrays can be converted to Python scalars"). Triton 3.9 squeezes the array first; do the same for older
    interpreters. Compiled kernels are not affected."""
    from triton.runtime import interpreter
    patch = getattr(interpreter, '_patch_lang_tensor', None)
    if patch is None or getattr(patch, 'squeezes_scalar_index', False):
        return

    def patch_with_squeezed_index(tensor, scope):
        patch(tensor, scope)
        scope.set_attr(tensor, '__index__', lambda self: int(self.handle.data.squeeze()))

    patch_with_squeezed_index.squeezes_scalar_index = True
    interpreter._patch_lang_tensor = patch_with_squeezed_index


if interpreting():
    _backport_interpreter_scalar_index()

KERNEL_RANK = 16  # geometry.FACTOR_RANK (10) factors zero-padded to the MMA K granularity
# psi[..., 10] = 1 and phi[..., 10] = 0: the column right after the 10 factors (see _key_factors)
ONES_COLUMN = tl.constexpr(FACTOR_RANK)
_LOG2E = 1.4426950408889634
_HEAD_DIMS = (16, 32, 64, 128)
_FACTOR_PRECISIONS = ('auto', 'bf16x3', 'tf32x3')

# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------

# The interpreter's tl.dot multiplies raw bf16 bit patterns; there (only) 16-bit operands are
# upcast first, which gives the exact products of a 16-bit MMA with fp32 accumulation.
_UPCAST_DOT = tl.constexpr(interpreting())


@triton.jit
def _dot(a, b, acc):
    if _UPCAST_DOT:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision='ieee')
    else:
        out = tl.dot(a, b, acc)
    return out


@triton.jit
def _mm(a, b, acc, PREC: tl.constexpr):
    """acc + a @ b; PREC 'none' lets Triton pick (16-bit operands), else fp32 input precision."""
    if PREC == 'none':
        out = _dot(a, b, acc)
    else:
        out = tl.dot(a, b, acc, input_precision=PREC)
    return out


@triton.jit
def _bias_mm(a_x, a_hi, b_x, b_hi, acc, SPLIT: tl.constexpr, FACT_PREC: tl.constexpr):
    """acc + a @ b for fp32 factors a, b. SPLIT: a_x = [a_lo | a_hi], b_x = [b_hi | b_lo]^T (bf16,
    K = 2 RANK) give the cross terms in one dot, then a_hi @ b_hi. Else fp32 a_hi, b_hi.
    FACT_PREC 'off' drops the bias (only for timing the kernels without it)."""
    if FACT_PREC == 'off':
        acc = acc
    elif SPLIT:
        acc = _dot(a_x, b_x, acc)
        acc = _dot(a_hi, b_hi, acc)
    else:
        acc = tl.dot(a_hi, b_hi, acc, input_precision=FACT_PREC)
    return acc


@triton.jit
def _phi_columns(x, y, z, c):
    """phi(r)[c] (BM, W) for column indices c (1, W) in [0, RANK): phi = [x, y, z, 1, x^2, y^2, z^2, xy, xz, yz,
    0...], from (BM,) x, y, z."""
    x = x[:, None]
    y = y[:, None]
    z = z[:, None]
    return tl.where(
        c == 0, x,
        tl.where(
            c == 1, y,
            tl.where(
                c == 2, z,
                tl.where(
                    c == 3, 1.0,
                    tl.where(
                        c == 4, x * x,
                        tl.where(
                            c == 5, y * y,
                            tl.where(c == 6, z * z,
                                     tl.where(c == 7, x * y, tl.where(c == 8, x * z, tl.where(c == 9, y * z,
                                                                                              0.0))))))))))


@triton.jit
def _query_phi(x, y, z, RANK: tl.constexpr):
    """phi(r) (BM, RANK) from (BM,) x, y, z."""
    return _phi_columns(x, y, z, tl.arange(0, RANK)[None, :])


@triton.jit
def _key_frame_points(R, C, offs, ok, stride_rm, stride_rc, inv_len):
    """Points (R[offs] - C) * inv_len as (BM,) x, y, z (0 - C where not ``ok``): R at the batch's first row,
    C its key-frame centre (3 fp32)."""
    base = R + offs * stride_rm
    x = (tl.load(base, mask=ok, other=0.0) - tl.load(C)) * inv_len
    y = (tl.load(base + stride_rc, mask=ok, other=0.0) - tl.load(C + 1)) * inv_len
    z = (tl.load(base + 2 * stride_rc, mask=ok, other=0.0) - tl.load(C + 2)) * inv_len
    return x, y, z


@triton.jit
def _query_factor_tiles(R, C, BS, offs, ok, stride_rm, stride_rc, inv_len, coef_scale, RANK: tl.constexpr,
                        FW: tl.constexpr, SPLIT: tl.constexpr):
    """Query factors a = coef_scale * bias_scale[h] * phi(r_n), r_n = (r - centre) * inv_len, of query rows
    ``offs`` (R, C at the batch, BS at the head): (a_x (BM, FW), a_hi (BM, RANK)) as ``_factor_tiles`` loads
    them from A. SPLIT: a_x = [a_lo | a_hi] (bf16, FW = 2 RANK), a_hi = bf16(a); else a_x = a_hi = fp32 a."""
    x, y, z = _key_frame_points(R, C, offs, ok, stride_rm, stride_rc, inv_len)
    scale = tl.load(BS) * coef_scale
    a = _query_phi(x, y, z, RANK) * scale
    if SPLIT:
        cw = tl.arange(0, FW)[None, :]
        a_w = _phi_columns(x, y, z, cw % RANK) * scale
        hi_w = a_w.to(tl.bfloat16)
        a_x = tl.where(cw < RANK, (a_w - hi_w.to(tl.float32)).to(tl.bfloat16), hi_w)
        a_hi = a.to(tl.bfloat16)
    else:
        a_x = a
        a_hi = a
    return a_x, a_hi


@triton.jit
def _key_factor_kernel(O, DIR, C, P, stride_ob, stride_on, stride_oc, stride_db, stride_dn, stride_dc, stride_cb, N_K,
                       inv_len, RANK: tl.constexpr, SPLIT: tl.constexpr, BLOCK: tl.constexpr):
    """psi(o_n, d), o_n = (o - centre) * inv_len, with phi(r).psi(o, d) = |r - o|^2 - ((r - o).d)^2 and
    psi[..., ONES_COLUMN] = 1 (phi is 0 there: bias unchanged, see the dq kernel), into P (Bp, Nk, W) for key
    block program_id(0) of line batch program_id(1). SPLIT: W = 2 RANK, bf16 [psi_hi | psi_lo]; else W = RANK,
    fp32 psi."""
    pid = tl.program_id(0)
    b = tl.program_id(1)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    ok = offs < N_K
    db = DIR + b * stride_db + offs * stride_dn
    ox, oy, oz = _key_frame_points(O + b * stride_ob, C + b * stride_cb, offs, ok, stride_on, stride_oc, inv_len)
    ox = ox[:, None]
    oy = oy[:, None]
    oz = oz[:, None]
    dx = tl.load(db, mask=ok, other=0.0)[:, None]
    dy = tl.load(db + stride_dc, mask=ok, other=0.0)[:, None]
    dz = tl.load(db + 2 * stride_dc, mask=ok, other=0.0)[:, None]
    od = ox * dx + oy * dy + oz * dz
    c = tl.arange(0, RANK)[None, :]
    psi = tl.where(
        c == 0, 2.0 * (od * dx - ox),
        tl.where(
            c == 1, 2.0 * (od * dy - oy),
            tl.where(
                c == 2, 2.0 * (od * dz - oz),
                tl.where(
                    c == 3, ox * ox + oy * oy + oz * oz - od * od,
                    tl.where(
                        c == 4, 1.0 - dx * dx,
                        tl.where(
                            c == 5, 1.0 - dy * dy,
                            tl.where(
                                c == 6, 1.0 - dz * dz,
                                tl.where(
                                    c == 7, -2.0 * dx * dy,
                                    tl.where(c == 8, -2.0 * dx * dz,
                                             tl.where(c == 9, -2.0 * dy * dz, tl.where(c == ONES_COLUMN, 1.0,
                                                                                       0.0)))))))))))
    if SPLIT:
        off = (b * N_K + offs[:, None]) * (2 * RANK) + c
        hi = psi.to(tl.bfloat16)
        tl.store(P + off, hi, mask=ok[:, None])
        tl.store(P + off + RANK, (psi - hi.to(tl.float32)).to(tl.bfloat16), mask=ok[:, None])
    else:
        tl.store(P + (b * N_K + offs[:, None]) * RANK + c, psi, mask=ok[:, None])


@triton.jit
def _query_factor_bwd_kernel(R, C, BS, DA, DR, DBS_PART, stride_rb, stride_rm, stride_rc, stride_cb, H, N_Q, coef_scale,
                             inv_len, RANK: tl.constexpr, BLOCK: tl.constexpr):
    """From dA (B, H, Nq, RANK): dr (B, Nq, 3) in r's units (d r_n summed over heads, times inv_len), and
    per-(b, block) partial d bias_scale (B, n_blocks, H) (summed in torch: deterministic, no atomics)."""
    pid = tl.program_id(0)
    b = tl.program_id(1)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    ok = offs < N_Q
    x, y, z = _key_frame_points(R + b * stride_rb, C + b * stride_cb, offs, ok, stride_rm, stride_rc, inv_len)
    phi = _query_phi(x, y, z, RANK)
    c = tl.arange(0, RANK)[None, :]
    dphi = tl.zeros([BLOCK, RANK], dtype=tl.float32)
    for h in range(H):
        da = tl.load(DA + ((b * H + h) * N_Q + offs[:, None]) * RANK + c, mask=ok[:, None], other=0.0)
        dphi += da * (tl.load(BS + h) * coef_scale)
        part = tl.sum(tl.sum(da * phi, 1), 0) * coef_scale
        tl.store(DBS_PART + (b * tl.num_programs(0) + pid) * H + h, part)
    g0 = tl.sum(tl.where(c == 0, dphi, 0.0), 1)
    g1 = tl.sum(tl.where(c == 1, dphi, 0.0), 1)
    g2 = tl.sum(tl.where(c == 2, dphi, 0.0), 1)
    g4 = tl.sum(tl.where(c == 4, dphi, 0.0), 1)
    g5 = tl.sum(tl.where(c == 5, dphi, 0.0), 1)
    g6 = tl.sum(tl.where(c == 6, dphi, 0.0), 1)
    g7 = tl.sum(tl.where(c == 7, dphi, 0.0), 1)
    g8 = tl.sum(tl.where(c == 8, dphi, 0.0), 1)
    g9 = tl.sum(tl.where(c == 9, dphi, 0.0), 1)
    out = DR + (b * N_Q + offs) * 3
    tl.store(out, (g0 + 2.0 * x * g4 + y * g7 + z * g8) * inv_len, mask=ok)
    tl.store(out + 1, (g1 + 2.0 * y * g5 + x * g7 + z * g9) * inv_len, mask=ok)
    tl.store(out + 2, (g2 + 2.0 * z * g6 + x * g8 + y * g9) * inv_len, mask=ok)


# Factor layout: A (B, H, Nq, FW) and psi (Bp, Nk, FW) are contiguous; SPLIT: FW = 2 RANK with
# A rows [a_lo | a_hi] and psi rows [psi_hi | psi_lo] (bf16), else FW = RANK (fp32).


@triton.jit
def _load_tile(ptrs, ok, other, MASK: tl.constexpr):
    """tl.load(ptrs) of a full tile, or masked by ``ok`` (broadcast to ptrs) when MASK (the ragged
    last tile of a loop)."""
    if MASK:
        x = tl.load(ptrs, mask=ok, other=other)
    else:
        x = tl.load(ptrs)
    return x


@triton.jit
def _factor_tiles(base, offs, ok, HI: tl.constexpr, RANK: tl.constexpr, FW: tl.constexpr, SPLIT: tl.constexpr,
                  MASK: tl.constexpr, TRANS: tl.constexpr):
    """Factor tiles of rows ``offs`` (valid where ``ok``) of a contiguous (rows, FW) factor matrix at
    ``base``: hi = columns HI .. HI + RANK, x = the whole row when SPLIT (else x = hi); shaped
    (rows, width), or (width, rows) when TRANS."""
    if TRANS:
        hi_ptrs = base + offs[None, :] * FW + HI + tl.arange(0, RANK)[:, None]
        x_ptrs = base + offs[None, :] * FW + tl.arange(0, FW)[:, None]
        ok2 = ok[None, :]
    else:
        hi_ptrs = base + offs[:, None] * FW + HI + tl.arange(0, RANK)[None, :]
        x_ptrs = base + offs[:, None] * FW + tl.arange(0, FW)[None, :]
        ok2 = ok[:, None]
    hi = _load_tile(hi_ptrs, ok2, 0.0, MASK)
    if SPLIT:
        x = _load_tile(x_ptrs, ok2, 0.0, MASK)
    else:
        x = hi
    return x, hi


@triton.jit
def _fwd_tile(acc, l_i, m_i, q, a_x, a_hi, k_base, v_base, p_base, stride_kn, stride_kd, stride_vn, stride_vd, start_n,
              N_K, qk_scale, HEAD_DIM: tl.constexpr, RANK: tl.constexpr, FW: tl.constexpr, SPLIT: tl.constexpr,
              DOT_PREC: tl.constexpr, FACT_PREC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              MASK: tl.constexpr):
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    n_ok = offs_n < N_K
    kt = _load_tile(k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd, n_ok[None, :], 0.0, MASK)
    v = _load_tile(v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd, n_ok[:, None], 0.0, MASK)
    pt_x, pt_hi = _factor_tiles(p_base, offs_n, n_ok, 0, RANK, FW, SPLIT, MASK, True)
    s = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    s = _bias_mm(a_x, a_hi, pt_x, pt_hi, s, SPLIT, FACT_PREC)
    s = _mm(q, kt, s, DOT_PREC)
    if MASK:
        s = tl.where(n_ok[None, :], s, float('-inf'))
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
    p = tl.exp2(s * qk_scale - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    acc = _mm(p.to(v.dtype), v, acc, DOT_PREC)
    return acc, l_i, m_new


# Block configurations. On H100 at head dim 32 the kernels are bound by exp/ALU work per
# score element, so the candidates differ mainly in tile area per warp (register pressure of
# the (BM, BN) fp32 score tile) and in the number of programs (1800 queries give only 15
# query blocks of 128 per (b, h)). Kept small: each config costs a compile at first use.
def _cfg(bm, bn, warps, stages):
    return triton.Config({'BLOCK_M': bm, 'BLOCK_N': bn}, num_warps=warps, num_stages=stages)


# Register use per thread measured by compiling for sm_90 offline (bf16, D=32, bf16x3): every
# config below compiles to wgmma without register spills (dq 64x128 w4, 128x128 and
# dk/dv 128x64 spilled).
_FWD_CONFIGS = [_cfg(128, 64, 4, 3), _cfg(128, 128, 8, 3), _cfg(64, 64, 4, 3), _cfg(128, 32, 4, 3), _cfg(128, 64, 8, 2)]
# dk/dv: BLOCK_N keys stay on chip, BLOCK_M queries stream.
_DKDV_CONFIGS = [_cfg(64, 64, 4, 3), _cfg(64, 128, 8, 3), _cfg(32, 64, 4, 3), _cfg(32, 128, 8, 3), _cfg(64, 64, 8, 3)]
# dq: BLOCK_M queries stay on chip, BLOCK_N keys stream.
_DQ_CONFIGS = [_cfg(64, 64, 4, 3), _cfg(128, 64, 8, 3), _cfg(64, 32, 4, 3), _cfg(128, 32, 8, 3), _cfg(64, 128, 8, 3)]
_TUNE_KEY = ['HEAD_DIM', 'FW', 'SPLIT', 'DOT_PREC', 'FACT_PREC']
_INTERPRET_META = dict(BLOCK_M=16, BLOCK_N=16)


def _dq_fp32_safe(cfg) -> bool:
    """dq with fp32 factors: fp32 G / pbar tiles are (BM, 32); with more warpgroups than BM / 64
    Triton splits their N over warpgroups into tf32 wgmma of N = 16, the small-N shape class of
    the H100 illegal-address failure (defensive)."""
    return cfg.num_warps <= 4 * (cfg.kwargs['BLOCK_M'] // 64)


@triton.jit
def _f32_lse(F32, n_rows, N_Q, HEAD_DIM: tl.constexpr):
    """The log-sum-exp part of an fp32 buffer of ``n_rows`` rows (see ``_f32_rows``): (n_rows, Nq) after O."""
    return F32 + n_rows * N_Q * HEAD_DIM


@triton.jit
def _f32_delta(F32, n_rows, N_Q, HEAD_DIM: tl.constexpr):
    """The delta part of the forward's saved fp32 buffer (see ``_f32_rows``): (n_rows, Nq) after the lse part."""
    return F32 + n_rows * N_Q * (HEAD_DIM + 1)


@triton.jit
def _store_fwd_outputs(Out, F32, acc, lse, b, h, row, n_rows, offs_m, m_ok, stride_ob, stride_oh, stride_om, stride_od,
                       N_Q, HEAD_DIM: tl.constexpr, PARTIAL: tl.constexpr, SAVE: tl.constexpr):
    """Normalised output acc (BM, D) fp32 and base-2 log-sum-exp lse (BM,) of query rows offs_m (valid where m_ok).
    PARTIAL (one key split's part): to row ``row`` of the fp32 buffer F32 of ``n_rows`` rows (``_f32_rows``).
    Else to Out (q's dtype, strides of (B, H, Nq, D)) at (b, h), and when SAVE (a backward follows) also to F32.
    The fp32 copy is the backward's delta input: a 16-bit O would put its rounding into every dS."""
    offs_d = tl.arange(0, HEAD_DIM)
    if not PARTIAL:
        tl.store(
            Out + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od,
            acc.to(Out.dtype.element_ty),
            mask=m_ok[:, None])
    if PARTIAL or SAVE:
        tl.store(F32 + (row * N_Q + offs_m[:, None]) * HEAD_DIM + offs_d[None, :], acc, mask=m_ok[:, None])
        tl.store(_f32_lse(F32, n_rows, N_Q, HEAD_DIM) + row * N_Q + offs_m, lse, mask=m_ok)


@triton.jit
def _merge_kv_splits(PART, Out, F32, pid_bh, n_bh, b, h, offs, ok, stride_ob, stride_oh, stride_om, stride_od, N_Q,
                     N_SPLITS, HEAD_DIM: tl.constexpr, SAVE: tl.constexpr, BLOCK: tl.constexpr):
    """Merges the key splits of BLOCK query rows ``offs`` (valid where ``ok``) of one b*h: from the normalised split
    outputs o_s and their base-2 log-sum-exps lse_s in PART (S * B*H rows, ``_f32_rows``), out = sum_s 2^(lse_s -
    lse) o_s with lse = log2 sum_s 2^lse_s, written to Out (q's dtype, any strides), and with SAVE to F32 (B*H rows).
    The splits are summed in their order, whichever program merges. PART is read through L2 (``.cg``): other
    programs of the launch wrote it."""
    offs_d = tl.arange(0, HEAD_DIM)
    LP = _f32_lse(PART, N_SPLITS * n_bh, N_Q, HEAD_DIM)
    m = tl.full([BLOCK], float('-inf'), dtype=tl.float32)
    for s in range(N_SPLITS):
        m = tl.maximum(m, tl.load(LP + (s * n_bh + pid_bh) * N_Q + offs, mask=ok, other=0.0, cache_modifier='.cg'))
    l_sum = tl.zeros([BLOCK], dtype=tl.float32)
    acc = tl.zeros([BLOCK, HEAD_DIM], dtype=tl.float32)
    for s in range(N_SPLITS):
        w = tl.exp2(tl.load(LP + (s * n_bh + pid_bh) * N_Q + offs, mask=ok, other=0.0, cache_modifier='.cg') - m)
        o = tl.load(
            PART + ((s * n_bh + pid_bh) * N_Q + offs[:, None]) * HEAD_DIM + offs_d[None, :],
            mask=ok[:, None],
            other=0.0,
            cache_modifier='.cg')
        l_sum += w
        acc += w[:, None] * o
    _store_fwd_outputs(Out, F32, acc / l_sum[:, None], m + tl.log2(l_sum), b, h, pid_bh, n_bh, offs, ok, stride_ob,
                       stride_oh, stride_om, stride_od, N_Q, HEAD_DIM, False, SAVE)


@triton.autotune(configs=_FWD_CONFIGS, key=_TUNE_KEY + ['KV_SPLIT', 'SAVE'])
@triton.jit
def _attn_fwd(Q, K, V, R, C, BS, P, A, Out, F32, PART, LOCKS, stride_qb, stride_qh, stride_qm, stride_qd, stride_kb,
              stride_kh, stride_kn, stride_kd, stride_vb, stride_vh, stride_vn, stride_vd, stride_ob, stride_oh,
              stride_om, stride_od, stride_rb, stride_rm, stride_rc, stride_cb, stride_pb, H, N_Q, N_K, KEYS_PER_SPLIT,
              qk_scale, coef_scale, inv_len, HEAD_DIM: tl.constexpr, RANK: tl.constexpr, FW: tl.constexpr,
              SPLIT: tl.constexpr, DOT_PREC: tl.constexpr, FACT_PREC: tl.constexpr, KV_SPLIT: tl.constexpr,
              SAVE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program per (query block, b*h, key split s): keys s * KEYS_PER_SPLIT .. + KEYS_PER_SPLIT.
    The query factors of the block come from r, the key-frame centre C and bias_scale in registers; with SAVE
    (a backward follows) split 0 also writes them to A (B, H, Nq, FW) for the backward kernels.
    Writes Out, and with SAVE the fp32 output and log-sum-exp to F32 (B*H rows, ``_f32_rows``).
    KV_SPLIT True (S splits): each split writes its normalised fp32 output and log-sum-exp to PART (S * B*H rows,
    row s * B*H + b*h), then counts itself done in LOCKS (int32, one counter per (b*h, query block), zero before
    the launch); the split that counts last merges the block's S parts (``_merge_kv_splits``) and sets the counter
    back to zero for the next launch (flash-decoding without a second launch)."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    pid_s = tl.program_id(2)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    m_ok = offs_m < N_Q
    q = tl.load(
        Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
        mask=m_ok[:, None],
        other=0.0)
    a_x, a_hi = _query_factor_tiles(R + b * stride_rb, C + b * stride_cb, BS + h, offs_m, m_ok, stride_rm, stride_rc,
                                    inv_len, coef_scale, RANK, FW, SPLIT)
    if SAVE:
        if pid_s == 0:
            tl.store(A + (pid_bh * N_Q + offs_m[:, None]) * FW + tl.arange(0, FW)[None, :], a_x, mask=m_ok[:, None])
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    p_base = P + b * stride_pb
    m_i = tl.full([BLOCK_M], float('-inf'), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    lo = pid_s * KEYS_PER_SPLIT
    hi = tl.minimum(lo + KEYS_PER_SPLIT, N_K)
    n_full = lo + ((hi - lo) // BLOCK_N) * BLOCK_N
    for start_n in range(lo, n_full, BLOCK_N):
        acc, l_i, m_i = _fwd_tile(acc, l_i, m_i, q, a_x, a_hi, k_base, v_base, p_base, stride_kn, stride_kd, stride_vn,
                                  stride_vd, start_n, hi, qk_scale, HEAD_DIM, RANK, FW, SPLIT, DOT_PREC, FACT_PREC,
                                  BLOCK_M, BLOCK_N, False)
    if n_full < hi:  # the ragged last tile of the split, masked at its end
        acc, l_i, m_i = _fwd_tile(acc, l_i, m_i, q, a_x, a_hi, k_base, v_base, p_base, stride_kn, stride_kd, stride_vn,
                                  stride_vd, n_full, hi, qk_scale, HEAD_DIM, RANK, FW, SPLIT, DOT_PREC, FACT_PREC,
                                  BLOCK_M, BLOCK_N, True)
    n_bh = tl.num_programs(1)
    if KV_SPLIT:
        n_s = tl.num_programs(2)
        _store_fwd_outputs(Out, PART, acc / l_i[:, None], m_i + tl.log2(l_i), b, h, pid_s * n_bh + pid_bh, n_s * n_bh,
                           offs_m, m_ok, stride_ob, stride_oh, stride_om, stride_od, N_Q, HEAD_DIM, True, SAVE)
        tl.debug_barrier()  # every thread's part is stored before the count below releases it to the merging program
        lock = LOCKS + pid_bh * tl.num_programs(0) + pid_m
        if tl.atomic_add(lock, 1, sem='acq_rel') == n_s - 1:  # the block's other splits are done: merge
            _merge_kv_splits(PART, Out, F32, pid_bh, n_bh, b, h, offs_m, m_ok, stride_ob, stride_oh, stride_om,
                             stride_od, N_Q, n_s, HEAD_DIM, SAVE, BLOCK_M)
            tl.atomic_xchg(lock, 0)
    else:
        _store_fwd_outputs(Out, F32, acc / l_i[:, None], m_i + tl.log2(l_i), b, h, pid_bh, n_bh, offs_m, m_ok,
                           stride_ob, stride_oh, stride_om, stride_od, N_Q, HEAD_DIM, False, SAVE)


@triton.jit
def _bwd_delta(DO, F32, stride_ob, stride_oh, stride_om, stride_od, H, N_Q, HEAD_DIM: tl.constexpr,
               BLOCK: tl.constexpr):
    """delta = rowsum(dO * O) (fp32) of BLOCK query rows of one b*h (grid (cdiv(Nq, BLOCK), B*H)), from the forward's
    fp32 output O in F32 (``_f32_rows``, B*H rows) into F32's delta part: the backward's first launch; the dq and
    dk/dv kernels read it."""
    pid_bh = tl.program_id(1)
    n_bh = tl.num_programs(1)
    b = pid_bh // H
    h = pid_bh % H
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < N_Q
    offs_d = tl.arange(0, HEAD_DIM)
    do = tl.load(
        DO + b * stride_ob + h * stride_oh + offs[:, None] * stride_om + offs_d[None, :] * stride_od,
        mask=ok[:, None],
        other=0.0)
    o32 = tl.load(F32 + (pid_bh * N_Q + offs[:, None]) * HEAD_DIM + offs_d[None, :], mask=ok[:, None], other=0.0)
    tl.store(_f32_delta(F32, n_bh, N_Q, HEAD_DIM) + pid_bh * N_Q + offs, tl.sum(o32 * do.to(tl.float32), 1), mask=ok)


@triton.jit
def _dkdv_tile(dk, dv, k, v, p_x, p_hi, q_base, do_base, a_base, LSE_b, DELTA_b, stride_qm, stride_qd, stride_om,
               stride_od, start_m, N_Q, qk_scale, HEAD_DIM: tl.constexpr, RANK: tl.constexpr, FW: tl.constexpr,
               SPLIT: tl.constexpr, DOT_PREC: tl.constexpr, FACT_PREC: tl.constexpr, BLOCK_M: tl.constexpr,
               BLOCK_N: tl.constexpr, MASK: tl.constexpr):
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    m_ok = offs_m < N_Q
    qt = _load_tile(q_base + offs_m[None, :] * stride_qm + offs_d[:, None] * stride_qd, m_ok[None, :], 0.0, MASK)
    do = _load_tile(do_base + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od, m_ok[:, None], 0.0, MASK)
    at_x, at_hi = _factor_tiles(a_base, offs_m, m_ok, FW - RANK, RANK, FW, SPLIT, MASK, True)
    lse = _load_tile(LSE_b + offs_m, m_ok, float('inf'), MASK)
    delta = _load_tile(DELTA_b + offs_m, m_ok, 0.0, MASK)
    st = tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32)
    st = _bias_mm(p_x, p_hi, at_x, at_hi, st, SPLIT, FACT_PREC)
    st = _mm(k, qt, st, DOT_PREC)
    pt = tl.exp2(st * qk_scale - lse[None, :])
    dv = _mm(pt.to(do.dtype), do, dv, DOT_PREC)
    dpt = _mm(v, tl.trans(do), tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32), DOT_PREC)
    dst = pt * (dpt - delta[None, :])
    dk = _mm(dst.to(qt.dtype), tl.trans(qt), dk, DOT_PREC)
    return dk, dv


@triton.autotune(configs=_DKDV_CONFIGS, key=_TUNE_KEY)
@triton.jit
def _attn_bwd_dkdv(Q, K, V, A, P, DO, F32, DK, DV, stride_qb, stride_qh, stride_qm, stride_qd, stride_kb, stride_kh,
                   stride_kn, stride_kd, stride_vb, stride_vh, stride_vn, stride_vd, stride_ob, stride_oh, stride_om,
                   stride_od, stride_pb, H, N_Q, N_K, qk_scale, sm_scale, HEAD_DIM: tl.constexpr, RANK: tl.constexpr,
                   FW: tl.constexpr, SPLIT: tl.constexpr, DOT_PREC: tl.constexpr, FACT_PREC: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program per (key block, b*h); dk, dv outputs are contiguous (B, H, Nk, D). Reads lse and delta from the
    forward's fp32 buffer F32 (``_f32_rows``; delta written by _bwd_delta)."""
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    n_ok = offs_n < N_K
    k = tl.load(
        K + b * stride_kb + h * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd,
        mask=n_ok[:, None],
        other=0.0)
    v = tl.load(
        V + b * stride_vb + h * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
        mask=n_ok[:, None],
        other=0.0)
    p_x, p_hi = _factor_tiles(P + b * stride_pb, offs_n, n_ok, 0, RANK, FW, SPLIT, True, False)
    q_base = Q + b * stride_qb + h * stride_qh
    do_base = DO + b * stride_ob + h * stride_oh
    a_base = A + pid_bh * N_Q * FW
    n_bh = tl.num_programs(1)
    LSE_b = _f32_lse(F32, n_bh, N_Q, HEAD_DIM) + pid_bh * N_Q
    DELTA_b = _f32_delta(F32, n_bh, N_Q, HEAD_DIM) + pid_bh * N_Q
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    m_full = (N_Q // BLOCK_M) * BLOCK_M
    for start_m in range(0, m_full, BLOCK_M):
        dk, dv = _dkdv_tile(dk, dv, k, v, p_x, p_hi, q_base, do_base, a_base, LSE_b, DELTA_b, stride_qm, stride_qd,
                            stride_om, stride_od, start_m, N_Q, qk_scale, HEAD_DIM, RANK, FW, SPLIT, DOT_PREC,
                            FACT_PREC, BLOCK_M, BLOCK_N, False)
    if m_full < N_Q:
        dk, dv = _dkdv_tile(dk, dv, k, v, p_x, p_hi, q_base, do_base, a_base, LSE_b, DELTA_b, stride_qm, stride_qd,
                            stride_om, stride_od, m_full, N_Q, qk_scale, HEAD_DIM, RANK, FW, SPLIT, DOT_PREC, FACT_PREC,
                            BLOCK_M, BLOCK_N, True)
    out_off = (pid_bh * N_K + offs_n[:, None]) * HEAD_DIM + offs_d[None, :]
    tl.store(DK + out_off, (dk * sm_scale).to(DK.dtype.element_ty), mask=n_ok[:, None])
    tl.store(DV + out_off, dv.to(DV.dtype.element_ty), mask=n_ok[:, None])


@triton.jit
def _dq_tile(dq, g, pbar, q, do, a_x, a_hi, lse, delta, k_base, v_base, p_base, stride_kn, stride_kd, stride_vn,
             stride_vd, start_n, N_K, qk_scale, HEAD_DIM: tl.constexpr, RANK: tl.constexpr, FW: tl.constexpr,
             SPLIT: tl.constexpr, DOT_PREC: tl.constexpr, FACT_PREC: tl.constexpr, BLOCK_M: tl.constexpr,
             BLOCK_N: tl.constexpr, MASK: tl.constexpr):
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    n_ok = offs_n < N_K
    kt = _load_tile(k_base + offs_n[None, :] * stride_kn + offs_d[:, None] * stride_kd, n_ok[None, :], 0.0, MASK)
    vt = _load_tile(v_base + offs_n[None, :] * stride_vn + offs_d[:, None] * stride_vd, n_ok[None, :], 0.0, MASK)
    pt_x, pt_hi = _factor_tiles(p_base, offs_n, n_ok, 0, RANK, FW, SPLIT, MASK, True)
    s = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    s = _bias_mm(a_x, a_hi, pt_x, pt_hi, s, SPLIT, FACT_PREC)
    s = _mm(q, kt, s, DOT_PREC)
    p = tl.exp2(s * qk_scale - lse[:, None])
    if MASK:
        p = tl.where(n_ok[None, :], p, 0.0)
    dp = _mm(do, vt, tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32), DOT_PREC)
    ds = p * (dp - delta[:, None])
    dq = _mm(ds.to(kt.dtype), tl.trans(kt), dq, DOT_PREC)
    # G += dS @ psi. SPLIT: dS rounded once to bf16 (the cast the dq dot already makes for bf16
    # inputs) against [psi_hi | psi_lo] in one dot (g is (BM, 2 RANK), halves added at the end).
    # Like the dense path's bf16 mask gradient, the rounding is random per element and
    # averages out in the sums over j.
    if FACT_PREC == 'off':
        g = g
    elif SPLIT:
        g = _dot(ds.to(tl.bfloat16), tl.trans(pt_x), g)
        pbar = _dot(p.to(tl.bfloat16), tl.trans(pt_hi), pbar)
    else:
        # fp32 psi^T padded with zero columns to N = 2 RANK = 32 (columns >= RANK are masked,
        # never read): an fp32 (tf32) dot with N = 16 and a transposed (N-major) B operand hit
        # an illegal memory access on H100 (Triton 3.6, every dq config), while N = 32 is the
        # shape of the fp32 dq dot ds @ k at D = 32, which runs fine.
        c2 = tl.arange(0, 2 * RANK)
        pg_ptrs = p_base + offs_n[None, :] * FW + c2[:, None]
        g_ok = c2[:, None] < RANK
        if MASK:
            g_ok = g_ok & n_ok[None, :]
        pt_g = tl.load(pg_ptrs, mask=g_ok, other=0.0)
        g = tl.dot(ds, tl.trans(pt_g), g, input_precision=FACT_PREC)
        pbar = tl.dot(p, tl.trans(pt_g), pbar, input_precision='tf32')
    return dq, g, pbar


@triton.autotune(configs=_DQ_CONFIGS, key=_TUNE_KEY)
@triton.jit
def _attn_bwd_dq(Q, K, V, A, P, DO, F32, DQ, DA, stride_qb, stride_qh, stride_qm, stride_qd, stride_kb, stride_kh,
                 stride_kn, stride_kd, stride_vb, stride_vh, stride_vn, stride_vd, stride_ob, stride_oh, stride_om,
                 stride_od, stride_pb, H, N_Q, N_K, qk_scale, sm_scale, HEAD_DIM: tl.constexpr, RANK: tl.constexpr,
                 FW: tl.constexpr, SPLIT: tl.constexpr, DOT_PREC: tl.constexpr, FACT_PREC: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program per (query block, b*h); writes dq (B, H, Nq, D) and dA (B, H, Nq, RANK) fp32. Reads lse and
    delta from F32 (``_f32_rows``; delta written by _bwd_delta)."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_r = tl.arange(0, RANK)
    m_ok = offs_m < N_Q
    q = tl.load(
        Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
        mask=m_ok[:, None],
        other=0.0)
    do = tl.load(
        DO + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od,
        mask=m_ok[:, None],
        other=0.0)
    a_x, a_hi = _factor_tiles(A + pid_bh * N_Q * FW, offs_m, m_ok, FW - RANK, RANK, FW, SPLIT, True, False)
    n_bh = tl.num_programs(1)
    lse = tl.load(_f32_lse(F32, n_bh, N_Q, HEAD_DIM) + pid_bh * N_Q + offs_m, mask=m_ok, other=float('inf'))
    delta = tl.load(_f32_delta(F32, n_bh, N_Q, HEAD_DIM) + pid_bh * N_Q + offs_m, mask=m_ok, other=0.0)
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    p_base = P + b * stride_pb
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    # (BM, 2 RANK): SPLIT: G against [psi_hi | psi_lo]; else G and pbar against [psi | 0]
    g = tl.zeros([BLOCK_M, 2 * RANK], dtype=tl.float32)
    if SPLIT:
        pbar = tl.zeros([BLOCK_M, RANK], dtype=tl.float32)
    else:
        pbar = tl.zeros([BLOCK_M, 2 * RANK], dtype=tl.float32)
    n_full = (N_K // BLOCK_N) * BLOCK_N
    for start_n in range(0, n_full, BLOCK_N):
        dq, g, pbar = _dq_tile(dq, g, pbar, q, do, a_x, a_hi, lse, delta, k_base, v_base, p_base, stride_kn, stride_kd,
                               stride_vn, stride_vd, start_n, N_K, qk_scale, HEAD_DIM, RANK, FW, SPLIT, DOT_PREC,
                               FACT_PREC, BLOCK_M, BLOCK_N, False)
    if n_full < N_K:
        dq, g, pbar = _dq_tile(dq, g, pbar, q, do, a_x, a_hi, lse, delta, k_base, v_base, p_base, stride_kn, stride_kd,
                               stride_vn, stride_vd, n_full, N_K, qk_scale, HEAD_DIM, RANK, FW, SPLIT, DOT_PREC,
                               FACT_PREC, BLOCK_M, BLOCK_N, True)
    g = tl.sum(tl.reshape(g, (BLOCK_M, 2, RANK)), 1)  # psi_hi part + psi_lo part (or + 0)
    if not SPLIT:
        pbar = tl.sum(tl.reshape(pbar, (BLOCK_M, 2, RANK)), 1)
    dq_off = (pid_bh * N_Q + offs_m[:, None]) * HEAD_DIM + offs_d[None, :]
    tl.store(DQ + dq_off, (dq * sm_scale).to(DQ.dtype.element_ty), mask=m_ok[:, None])
    # delta = rowsum(dO * O) carries O's rounding (P is rounded to 16 bits before P @ V), which
    # shifts every dS_ij by p_ij * err_i, and the bf16 rounding of dS adds noise; G's ones
    # column holds their row sum err_i (exact dS sums to 0 over j), so project it out:
    # G -= err_i * sum_j p_ij psi_j. This removes the part that does not cancel in
    # d bias_scale = -sum_i phi_i . G_i when dist2 is large.
    err = tl.sum(tl.where(offs_r[None, :] == ONES_COLUMN, g, 0.0), 1)
    g = g - err[:, None] * pbar
    da_off = (pid_bh * N_Q + offs_m[:, None]) * RANK + offs_r[None, :]
    tl.store(DA + da_off, g * sm_scale, mask=m_ok[:, None])


# the same dq kernel, autotuned over the configs that suit fp32 factors
_attn_bwd_dq_fp32 = triton.autotune(
    configs=[c for c in _DQ_CONFIGS if _dq_fp32_safe(c)], key=_TUNE_KEY)(
        _attn_bwd_dq.fn)

# ----------------------------------------------------------------------------------------------
# Launching: autotuned, forced (tests, tools/benchmarks/check_triton_configs.py) or interpreted
# ----------------------------------------------------------------------------------------------
# Kernel name -> Autotuner; 'dq_fp32_factors' is the dq kernel over the configs that suit fp32
# factors (see _dq_fp32_safe).
_TUNERS = {'fwd': _attn_fwd, 'dkdv': _attn_bwd_dkdv, 'dq': _attn_bwd_dq, 'dq_fp32_factors': _attn_bwd_dq_fp32}
_JIT_KERNELS = {'key_factors': _key_factor_kernel, 'delta': _bwd_delta, 'query_factor_bwd': _query_factor_bwd_kernel}
_FORCED = {}  # kernel name -> triton.Config used instead of autotuning (see forced_config)
_INTERPRETING = interpreting()  # fixed per process: TRITON_INTERPRET is read when triton is imported
COMPILED = CompiledLaunchCache()  # compiled kernels launched without Triton's per-call binding


@contextlib.contextmanager
def _overriding(store: dict, key, value):
    """Within the block ``store[key] = value``; afterwards the entry it replaced, or none (the module's settings
    stores: ``_FORCED``, ``_FORCED_KV_SPLITS``, ``_SERIAL_BACKWARD``)."""
    previous = store.get(key)
    store[key] = value
    try:
        yield
    finally:
        if previous is None:
            store.pop(key, None)
        else:
            store[key] = previous


def _cdiv(a: int, b: int) -> int:
    """ceil(a / b) of host integers (``triton.cdiv`` is a constexpr function since Triton 3.5: microseconds a call
    on the host)."""
    return -(-a // b)


def _launch(name, grid, tensors, scalars, consts, stream=None, key=None):
    """Launch kernel `name` (a key of _TUNERS or _JIT_KERNELS) with arguments (*tensors, *scalars, **consts) on
    grid (a tuple, or a function of the config's BLOCK_M/BLOCK_N), on ``stream`` (a torch.cuda.Stream; None: the
    current stream). Autotuned kernels: with a forced config if set, 16x16 tiles under TRITON_INTERPRET, else the
    autotuner's choice (the dq kernel with fp32 factors from its safe configs). Compiled launches after the first
    with the same key skip Triton's binding (COMPILED; ``key``: a launch plan's, see CompiledLaunchCache.launch)."""
    if name in _JIT_KERNELS:
        kernel, options = _JIT_KERNELS[name], {'num_warps': 4}
        if _INTERPRETING:
            kernel[grid](*tensors, *scalars, **consts, **options)
            return
    else:
        kernel, options = _TUNERS[name], {}
        cfg = _FORCED.get(name)
        if cfg is not None or _INTERPRETING:
            meta = cfg.all_kwargs() if cfg is not None else _INTERPRET_META
            with on_stream(stream):
                kernel.fn[grid](*tensors, *scalars, **consts, **meta)
            return
        if name == 'dq' and not consts['SPLIT']:
            name = 'dq_fp32_factors'
            kernel = _TUNERS[name]
    COMPILED.launch(name, kernel, grid, tensors, scalars, consts, options, stream, key)


def kernel_configs(name: str) -> list:
    """The autotune candidates (triton.Config) of kernel `name` in ('fwd', 'dkdv', 'dq')."""
    if name not in ('fwd', 'dkdv', 'dq'):
        raise ValueError(f"kernel_configs: name must be one of ('fwd', 'dkdv', 'dq'); got {name!r}")
    return _TUNERS[name].configs


def widen_configs(extra: dict) -> None:
    """Append configs to the autotune candidates: extra = {kernel name: [triton.Config]} (before
    the first call; tools/benchmarks/tune_triton_attention.py --wide)."""
    for name, configs in extra.items():
        kernel_configs(name).extend(configs)
    _TUNERS['dq_fp32_factors'].configs = [c for c in kernel_configs('dq') if _dq_fp32_safe(c)]
    COMPILED.clear()  # re-tune on the next call (the autotuners' own caches are keyed without the configs)
    _FWD_PLANS.clear()  # the key splits' granule is the largest BLOCK_N among the configs


@contextlib.contextmanager
def forced_config(name: str, config):
    """Within the block, kernel `name` ('fwd', 'dkdv', 'dq') launches with `config` (a
    triton.Config with BLOCK_M, BLOCK_N) instead of autotuning; also under TRITON_INTERPRET."""
    kernel_configs(name)  # validates the name
    if set(config.kwargs) != {'BLOCK_M', 'BLOCK_N'}:
        raise ValueError(f'forced_config: config must set exactly BLOCK_M and BLOCK_N; got {config.kwargs}')
    with _overriding(_FORCED, name, config):
        yield


def autotune_winners() -> dict:
    """Best configs chosen so far per autotuned kernel (for the tuning script); empty before the first
    call."""
    return {
        name: {
            str(k): str(v)
            for k, v in tuner.cache.items()
        }
        for name, tuner in _TUNERS.items() if getattr(tuner, 'cache', None)
    }


# ----------------------------------------------------------------------------------------------
# Key splits of the forward (flash-decoding): more programs when queries alone leave SMs idle
# ----------------------------------------------------------------------------------------------
_FORCED_KV_SPLITS = {}  # 'n': number of key splits used instead of the occupancy rule (see forced_kv_splits)
_MIN_KEYS_PER_SPLIT = 1024  # below this a split's fixed cost (its q/A loads, the merge) outweighs its tiles


@functools.lru_cache(maxsize=None)
def _num_sms(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _split_granule() -> int:
    """Keys per split are a multiple of this: the largest forward BLOCK_N (a forced config's, 16x16 tiles
    under the interpreter), so only the last split ends in a ragged tile."""
    cfg = _FORCED.get('fwd')
    if cfg is not None:
        return cfg.kwargs['BLOCK_N']
    if _INTERPRETING:
        return _INTERPRET_META['BLOCK_N']
    return max(c.kwargs['BLOCK_N'] for c in kernel_configs('fwd'))


def kv_splits(B: int, H: int, Nq: int, Nk: int, device) -> tuple:
    """(number of key splits S, keys per split) of the forward for these sizes.

    One program per (query block, b*h) leaves SMs idle when B * H * cdiv(Nq, 128) < the SM count (batch-1
    inference: 8 heads x 8 blocks of 900 queries = 64 programs on 132 SMs, each looping over all 22k keys).
    Then the keys are split so that about two programs per SM run, each split at least
    ``_MIN_KEYS_PER_SPLIT`` keys; one split otherwise, and on CPU (interpreter) unless forced.
    """
    device = torch.device(device)
    compiled = not _INTERPRETING and device.type == 'cuda'
    sms = _num_sms(device.index or 0) if compiled else 0
    return _kv_splits(B, H, Nq, Nk, sms, _FORCED_KV_SPLITS.get('n'), _split_granule())


@functools.lru_cache(maxsize=1024)
def _kv_splits(B, H, Nq, Nk, sms, forced, granule) -> tuple:
    """kv_splits for ``sms`` streaming multiprocessors (0: one split unless forced)."""
    if forced is not None:
        n = forced
    elif sms == 0:
        n = 1
    else:
        programs = B * H * _cdiv(Nq, 128)
        n = 1 if programs >= sms else min(_cdiv(2 * sms, programs), max(1, Nk // _MIN_KEYS_PER_SPLIT))
    n = max(1, min(n, Nk))
    keys = _cdiv(_cdiv(Nk, n), granule) * granule
    return _cdiv(Nk, keys), keys


@contextlib.contextmanager
def forced_kv_splits(n: int):
    """Within the block, the forward splits the keys into ``n`` parts (fewer if Nk is small) instead of the
    occupancy rule of ``kv_splits``; n = 1 is the single-pass forward (tests, benchmarks)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f'forced_kv_splits: n must be an int >= 1; got {n!r}')
    with _overriding(_FORCED_KV_SPLITS, 'n', n):
        yield


# ----------------------------------------------------------------------------------------------
# Key-side factors: once per set of key lines (decoder layers share them)
# ----------------------------------------------------------------------------------------------
class KeyFactors(NamedTuple):
    """The key side of one attention call.

    centre: (Bc, 1, 3) fp32, Bc in {1, B}: origin of the key frame, in the caller's units (metres for the path).
    psi: (Bp, Nk, FW) factors of the lines in the key frame ((o - centre) * inv_len, d); Bp in {1, B}; SPLIT
        layout (FW = 2 RANK, bf16 [psi_hi | psi_lo]) or fp32 (FW = RANK).
    inv_len: 1 / length scale (query points are mapped as (r - centre) * inv_len in the kernels).
    The query factors A take psi's layout and dtype.
    """
    centre: torch.Tensor
    psi: torch.Tensor
    inv_len: float

    @property
    def split(self) -> bool:
        """True for the bf16 [hi | lo] layout (FW = 2 RANK)."""
        return self.psi.shape[-1] == 2 * KERNEL_RANK


_KEY_FACTORS = KeyFactorCache()


def _aux_block() -> int:
    """Rows per program of the small kernels (key factors, split merge, delta, query-factor backward)."""
    return 16 if _INTERPRETING else 64


def _batch_stride(t: torch.Tensor) -> int:
    """Stride of dim 0, 0 when it has one entry (broadcast over the batch)."""
    return 0 if t.shape[0] == 1 else t.stride(0)


def key_factors(o, d, split: bool, length_scale: float = 1.0, centred: bool = False) -> KeyFactors:
    """KeyFactors of key lines o, d ((Nk, 3) or (Bk, Nk, 3), batch stride 0 allowed; detached and taken in fp32 when
    built), cached per tensors (o, d) (identity and in-place version) and settings: the decoder layers of one forward
    build them once, and a cached call does no tensor work.

    centred: the key frame's origin is the origins' centroid (the path: metres in, divided by ``length_scale``);
    else 0 (coordinates already in the kernel frame). Lines are shared by the batch (Bp = 1) when both o and d
    are (Nk, 3) or have one entry or batch stride 0.
    """
    inv_len = 1.0 / float(length_scale)

    def build():
        o3, d3 = batched_lines(o, d)
        return _build_key_factors(o3.detach().float(), d3.detach().float(), split, inv_len, centred)

    # inference tensors (built under torch.inference_mode) cannot be saved for a backward: their own entries
    settings = ('triton', split, float(length_scale), centred, torch.is_inference_mode_enabled())
    return _KEY_FACTORS.get_or_build(o, d, settings, build)


def _build_key_factors(o3, d3, split: bool, inv_len: float, centred: bool) -> KeyFactors:
    """KeyFactors of fp32 lines (o3, d3) (Bk, Nk, 3): one launch of the key factor kernel."""
    shared_o = o3.shape[0] == 1 or o3.stride(0) == 0
    bp = 1 if shared_o and (d3.shape[0] == 1 or d3.stride(0) == 0) else max(o3.shape[0], d3.shape[0])
    first = o3[:1] if shared_o else o3
    centre = key_centre(first) if centred else first.new_zeros((1, 1, 3))
    nk = o3.shape[1]
    fw = 2 * KERNEL_RANK if split else KERNEL_RANK
    psi = torch.empty((bp, nk, fw), dtype=torch.bfloat16 if split else torch.float32, device=o3.device)
    lines_o, lines_d = (o3[:1], d3[:1]) if bp == 1 else (o3.expand(bp, nk, 3), d3.expand(bp, nk, 3))
    blk = _aux_block()
    with _on_device(psi):
        _launch('key_factors', (_cdiv(nk, blk), bp), (lines_o, lines_d, centre, psi),
                (*lines_o.stride(), *lines_d.stride(), _batch_stride(centre), nk, inv_len),
                dict(RANK=KERNEL_RANK, SPLIT=split, BLOCK=blk))
    return KeyFactors(centre, psi, inv_len)


# ----------------------------------------------------------------------------------------------
# Forward, backward
# ----------------------------------------------------------------------------------------------
def _on_device(t: torch.Tensor):
    """Triton launches on the current CUDA device: make it t's device (tensors on cuda:1 etc.)."""
    if t.is_cuda and t.device.index != torch.cuda.current_device():
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


def _tile_consts(q, keys: KeyFactors, fact_prec: str) -> dict:
    """The constexprs the forward, dk/dv and dq kernels share."""
    return dict(
        HEAD_DIM=q.shape[-1],
        RANK=KERNEL_RANK,
        FW=keys.psi.shape[-1],
        SPLIT=keys.split,
        DOT_PREC='tf32x3' if q.dtype == torch.float32 else 'none',
        FACT_PREC=fact_prec)


def _f32_numel(rows: int, nq: int, d: int, delta: bool) -> int:
    """Elements of one flat fp32 buffer for ``rows`` rows of ``nq`` queries: [O (rows, Nq, D) | lse (rows, Nq)], and
    with ``delta`` [... | delta (rows, Nq)]. Rows are b*h (the forward's saved output; delta is written by _bwd_delta)
    or s * B*H + b*h (the key splits' parts, ``_split_scratch``). The kernels find lse and delta from the row count
    (``_f32_lse``, ``_f32_delta``)."""
    return rows * nq * (d + 2 if delta else d + 1)


def _f32_rows(rows: int, nq: int, d: int, delta: bool, device) -> torch.Tensor:
    """A new fp32 buffer of ``_f32_numel`` elements: one allocation where there were two or three, on the path to a
    launch."""
    return torch.empty(_f32_numel(rows, nq, d, delta), dtype=torch.float32, device=device)


class _ForwardPlan(NamedTuple):
    """The forward's launch arguments besides its tensors, for one ``_plan_key`` (``_forward_plan``): n_splits key
    splits of part_numel fp32 elements and lock_numel merge counters (``_split_scratch``)."""
    n_splits: int
    part_numel: int
    lock_numel: int
    grid: Callable[[dict], tuple]
    scalars: tuple
    consts: dict


_FWD_PLANS = {}  # _plan_key -> _ForwardPlan
_MAX_FWD_PLANS = 1024  # then the plans start over (a training run adds two per new query count)
_MIN_BLOCK_M = 16  # the smallest query tile of any forward config (merge counters are sized for it)


def _plan_key(q, k, v, r, bias_scale, keys: KeyFactors, sm_scale: float, fact_prec: str, save: bool):
    """Everything a forward's launches read of their inputs except the data pointers: shapes, strides, dtypes and
    device of q, k, v, r, bias_scale and the key factors, and the settings. None under a forced tile config or key
    split count and under the interpreter: those forwards plan every call."""
    if _FORCED or _FORCED_KV_SPLITS or _INTERPRETING:
        return None
    psi, centre = keys.psi, keys.centre
    return (q.shape, q.stride(), k.shape, k.stride(), v.shape, v.stride(), r.shape, r.stride(), bias_scale.shape,
            psi.shape, psi.stride(), centre.shape, centre.stride(), q.dtype, k.dtype, v.dtype, r.dtype,
            bias_scale.dtype, psi.dtype, centre.dtype, q.device, keys.inv_len, sm_scale, fact_prec, save)


def _forward_plan(q, k, v, r, keys: KeyFactors, out, sm_scale: float, fact_prec: str, save: bool) -> _ForwardPlan:
    """The launch arguments of ``_forward`` (out: a new (B, H, Nq, D) output, for its strides)."""
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    n_splits, keys_per_split = kv_splits(B, H, Nq, Nk, q.device)
    return _ForwardPlan(
        n_splits=n_splits,
        part_numel=_f32_numel(n_splits * B * H, Nq, D, False) if n_splits > 1 else 0,
        lock_numel=B * H * _cdiv(Nq, _MIN_BLOCK_M) if n_splits > 1 else 0,
        grid=lambda m: (_cdiv(Nq, m['BLOCK_M']), B * H, n_splits),
        scalars=(*q.stride(), *k.stride(), *v.stride(), *out.stride(), *r.stride(), _batch_stride(keys.centre),
                 _batch_stride(keys.psi), H, Nq, Nk, keys_per_split, sm_scale * _LOG2E, -1.0 / sm_scale, keys.inv_len),
        consts=dict(**_tile_consts(q, keys, fact_prec), KV_SPLIT=n_splits > 1, SAVE=save))


_SPLIT_SCRATCH = {}  # (CUDA device index, raw stream) -> (parts, counters) the stream's split forwards reuse
_MAX_SPLIT_SCRATCH = 16  # streams; then the buffers start over


def _split_scratch(part_numel: int, lock_numel: int, device: torch.device) -> tuple:
    """(parts, counters) for a forward with key splits: >= part_numel fp32 elements (``_f32_rows`` of the splits)
    and >= lock_numel int32 merge counters, all zero (every launch sets the counters it used back to zero).

    On CUDA the buffers are kept per stream and reused by the next split forward on that stream, which runs after
    the previous one has ended (stream order). On CPU (the interpreter) and during CUDA-graph capture they are new
    (a captured graph owns its counters: their zeroing is part of the graph)."""
    if device.type != 'cuda' or torch.cuda.is_current_stream_capturing():
        parts = torch.empty(part_numel, dtype=torch.float32, device=device)
        return parts, torch.zeros(lock_numel, dtype=torch.int32, device=device)
    where = (device.index, torch._C._cuda_getCurrentRawStream(device.index))
    kept = _SPLIT_SCRATCH.get(where)
    if kept is None or kept[0].numel() < part_numel or kept[1].numel() < lock_numel:
        if kept is None and len(_SPLIT_SCRATCH) >= _MAX_SPLIT_SCRATCH:
            _SPLIT_SCRATCH.clear()
        old = (0, 0) if kept is None else (kept[0].numel(), kept[1].numel())
        kept = _SPLIT_SCRATCH[where] = (torch.empty(max(part_numel, old[0]), dtype=torch.float32, device=device),
                                        torch.zeros(max(lock_numel, old[1]), dtype=torch.int32, device=device))
    return kept


def _forward(q, k, v, r, bias_scale, keys: KeyFactors, sm_scale: float, fact_prec: str, save: bool):
    """out (B, H, Nq, D); with ``save`` also (A, f32) for the backward (else None): A (B, H, Nq, FW) the query
    factors, f32 the fp32 output, lse and room for delta (``_f32_rows``, B*H rows).

    r (B, Nq, 3) fp32 in the caller's units, bias_scale (H,) fp32. One launch, with key splits too (their merge is
    in the kernel). The launch arguments come from a plan kept per ``_plan_key`` (on the GPU this host work delays
    the kernel: docs/benchmarks/README.md)."""
    B, H, Nq, D = q.shape
    dev = q.device
    out = torch.empty((B, H, Nq, D), dtype=q.dtype, device=dev)
    if save:
        a = torch.empty((B, H, Nq, keys.psi.shape[-1]), dtype=keys.psi.dtype, device=dev)
        f32 = _f32_rows(B * H, Nq, D, True, dev)
    else:  # never written (SAVE False): any pointer
        a = f32 = out
    key = _plan_key(q, k, v, r, bias_scale, keys, sm_scale, fact_prec, save)
    plan = _FWD_PLANS.get(key) if key is not None else None
    if plan is None:
        plan = _forward_plan(q, k, v, r, keys, out, sm_scale, fact_prec, save)
        if key is not None:
            if len(_FWD_PLANS) >= _MAX_FWD_PLANS:
                _FWD_PLANS.clear()
            _FWD_PLANS[key] = plan
    part, locks = _split_scratch(plan.part_numel, plan.lock_numel, dev) if plan.n_splits > 1 else (f32, f32)
    _launch(
        'fwd',
        plan.grid, (q, k, v, r, keys.centre, bias_scale, keys.psi, a, out, f32, part, locks),
        plan.scalars,
        plan.consts,
        key=key)
    return out, ((a, f32) if save else None)


def _backward(q,
              k,
              v,
              r,
              bias_scale,
              keys: KeyFactors,
              a,
              f32,
              dout,
              sm_scale: float,
              fact_prec: str,
              serial: bool = False):
    """(dq, dk, dv, dr, d bias_scale) of one call; dr in r's units. a, f32: what the forward saved. ``serial``: the
    dq and dk/dv kernels one after the other on the current stream (``serial_backward``).

    A small kernel writes delta = rowsum(dO * O) into f32 first. The dq kernel (one long program per query block:
    about 1.2 waves of programs at B=2, Nq=1800 on an H200) and the dk/dv kernel (many short programs) then run side
    by side on CUDA: dk/dv goes to a side stream (``_side_stream``) that waits for the current stream's work up to
    that point (delta, and every earlier use of the new buffers' memory), not for dq, so its programs fill the SMs
    the dq kernel's last wave leaves idle; the current stream waits for it before its next kernel. On CPU (the
    interpreter), and within ``serial_backward``, the kernels run in order on the current stream."""
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    dev = q.device
    dout = dout.to(q.dtype)
    blk = _aux_block()
    _launch('delta', (_cdiv(Nq, blk), B * H), (dout, f32), (*dout.stride(), H, Nq), dict(HEAD_DIM=D, BLOCK=blk))
    dq = torch.empty((B, H, Nq, D), dtype=q.dtype, device=dev)
    da = torch.empty((B, H, Nq, KERNEL_RANK), dtype=torch.float32, device=dev)
    dk = torch.empty((B, H, Nk, D), dtype=k.dtype, device=dev)
    dv = torch.empty((B, H, Nk, D), dtype=v.dtype, device=dev)
    main, side = (None, None) if serial else _side_stream(dev)
    if side is not None:
        side.wait_stream(main)
    scalars = (*q.stride(), *k.stride(), *v.stride(), *dout.stride(), _batch_stride(keys.psi), H, Nq, Nk,
               sm_scale * _LOG2E, sm_scale)
    consts = _tile_consts(q, keys, fact_prec)
    _launch('dq', lambda m: (_cdiv(Nq, m['BLOCK_M']), B * H), (q, k, v, a, keys.psi, dout, f32, dq, da), scalars,
            consts)
    _launch('dkdv', lambda m: (_cdiv(Nk, m['BLOCK_N']), B * H), (q, k, v, a, keys.psi, dout, f32, dk, dv), scalars,
            consts, side)
    if side is not None:
        main.wait_stream(side)  # before anything else runs on the current stream (or frees these buffers)
    n_blk = _cdiv(Nq, blk)
    dr = torch.empty((B, Nq, 3), dtype=torch.float32, device=dev)
    dbs_part = torch.empty((B, n_blk, H), dtype=torch.float32, device=dev)
    _launch('query_factor_bwd', (n_blk, B), (r, keys.centre, bias_scale, da, dr, dbs_part),
            (*r.stride(), _batch_stride(keys.centre), H, Nq, -1.0 / sm_scale, keys.inv_len),
            dict(RANK=KERNEL_RANK, BLOCK=blk))
    return dq, dk, dv, dr, dbs_part.sum(dim=(0, 1))


_SIDE_STREAMS = {}  # CUDA device -> the backward's side stream
_SERIAL_BACKWARD = {}  # 'on': True within serial_backward()


def _side_stream(device: torch.device) -> tuple:
    """(current stream, side stream) of ``device`` for the dk/dv kernel, or (None, None) on CPU (the interpreter).
    All buffers are allocated on the current stream, and it waits for the side stream before its next kernel, so
    the caching allocator's stream order holds."""
    if device.type != 'cuda' or _INTERPRETING:
        return None, None
    side = _SIDE_STREAMS.get(device)
    if side is None:
        side = _SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return torch.cuda.current_stream(device), side


@contextlib.contextmanager
def serial_backward():
    """Calls made within the block run their backward's dq and dk/dv kernels one after the other on the current
    stream (benchmarks: ``benchmark_attention.py``'s row triton-serial-bwd)."""
    with _overriding(_SERIAL_BACKWARD, 'on', True):
        yield


class _GeoBiasFlashAttention(torch.autograd.Function):
    """Fused geometric-bias attention with gradients to q, k, v, r and bias_scale; see attention_with_keys.
    fact_prec 'off' (tools/benchmarks/tune_triton_attention.py only) times the same kernels without the bias."""

    @staticmethod
    def forward(ctx, q, k, v, r, bias_scale, keys, sm_scale, fact_prec):
        with _on_device(q):
            out, (a, f32) = _forward(q, k, v, r, bias_scale, keys, sm_scale, fact_prec, save=True)
        ctx.save_for_backward(q, k, v, r, bias_scale, keys.centre, keys.psi, a, f32)
        ctx.consts = (keys.inv_len, sm_scale, fact_prec, bool(_SERIAL_BACKWARD))
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, r, bias_scale, centre, psi, a, f32 = ctx.saved_tensors
        inv_len, sm_scale, fact_prec, serial = ctx.consts
        with _on_device(dout):
            grads = _backward(q, k, v, r, bias_scale, KeyFactors(centre, psi, inv_len), a, f32, dout, sm_scale,
                              fact_prec, serial)
        return (*grads, None, None, None)


# ----------------------------------------------------------------------------------------------
# Public entry
# ----------------------------------------------------------------------------------------------
def check_kernel_limits(q, k, v):
    """What the kernels need of q, k, v beyond the shared checks of path_inputs: (B, H, N, D) with
    v's D equal to q's, Nq, Nk >= 1, D in _HEAD_DIMS, one dtype among fp16/bf16/fp32, int32 offsets."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError('triton_bias_attention: q, k, v must be (B, H, N, D); got '
                         f'q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}')
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    if k.shape != (B, H, Nk, D) or v.shape != (B, H, Nk, D):
        raise ValueError(f'triton_bias_attention: k and v must be (B={B}, H={H}, Nk, D={D}) with '
                         f'the same Nk; got k {tuple(k.shape)}, v {tuple(v.shape)}')
    if Nq < 1 or Nk < 1:
        raise ValueError(f'triton_bias_attention: need Nq >= 1 and Nk >= 1; got Nq={Nq}, Nk={Nk}')
    if D not in _HEAD_DIMS:
        raise ValueError(f'triton_bias_attention: head dim D={D} unsupported; expected one of {_HEAD_DIMS}')
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError('triton_bias_attention: q, k, v must share one dtype among float16, bfloat16, '
                         f'float32; got {q.dtype}, {k.dtype}, {v.dtype}')
    check_int32_offsets(q, k, v)


def check_int32_offsets(q, k, v):
    """Every element offset of q, k, v ((B, H, N, D), shapes already checked) and of the kernels' own buffers
    below 2**31 (the kernels' int32 offsets). It reads strides and storage offsets, which the triton path's input
    signature therefore holds (``paths/triton.py``, ``_signature``)."""
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    if max(B * H * max(Nq, Nk) * (max(D, KERNEL_RANK) + 2), _extent(q), _extent(k), _extent(v)) >= 2**31:
        raise ValueError('triton_bias_attention: tensors must have < 2**31 elements (int32 offsets); got '
                         f'B={B}, H={H}, Nq={Nq}, Nk={Nk}, D={D}')


def _extent(t: torch.Tensor) -> int:
    """1 + the largest element offset a 4-D tensor reaches in its storage."""
    n0, n1, n2, n3 = t.shape
    s0, s1, s2, s3 = t.stride()
    return t.storage_offset() + 1 + (n0 - 1) * abs(s0) + (n1 - 1) * abs(s1) + (n2 - 1) * abs(s2) + (n3 - 1) * abs(s3)


def _check_inputs(q, k, v, r, o, d, bias_scale):
    """Every check of a direct call (the triton path checks through path_inputs and
    check_kernel_limits instead)."""
    check_kernel_limits(q, k, v)
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    if r.shape != (B, Nq, 3):
        raise ValueError(f'triton_bias_attention: r must be (B={B}, Nq={Nq}, 3); got {tuple(r.shape)}')
    for name, t in (('o', o), ('d', d)):
        if t.shape != (B, Nk, 3):
            raise ValueError(f'triton_bias_attention: {name} must be (B={B}, Nk={Nk}, 3) (batch stride 0 '
                             f'allowed); got {tuple(t.shape)}')
        if t.requires_grad:
            raise ValueError(f'triton_bias_attention: no gradient is computed for key line `{name}`; '
                             'pass it detached')
    if bias_scale.shape != (H, ):
        raise ValueError(f'triton_bias_attention: bias_scale must be (H={H},); got {tuple(bias_scale.shape)}')
    for name, t in (('r', r), ('o', o), ('d', d), ('bias_scale', bias_scale)):
        if t.dtype != torch.float32:
            raise ValueError(f'triton_bias_attention: {name} must be float32; got {t.dtype}')
    devices = {t.device for t in (q, k, v, r, o, d, bias_scale)}
    if len(devices) != 1:
        raise ValueError(f'triton_bias_attention: all inputs must be on one device; got {sorted(map(str, devices))}')
    if not triton_is_available(q.device):
        raise RuntimeError(f'triton_bias_attention: Triton cannot run on {q.device} (needs CUDA, or CPU with '
                           'TRITON_INTERPRET=1 set before triton is imported)')


def split_factors(factor_precision: str, dtype: torch.dtype) -> bool:
    """True for the bf16x3 factor layout: 'bf16x3', or 'auto' with 16-bit q/k/v; False for 'tf32x3'."""
    if factor_precision not in _FACTOR_PRECISIONS:
        raise ValueError(f'triton_bias_attention: factor_precision must be one of {_FACTOR_PRECISIONS}; '
                         f'got {factor_precision!r}')
    return factor_precision == 'bf16x3' or (factor_precision == 'auto' and dtype != torch.float32)


def attention_with_keys(q, k, v, r, bias_scale, keys: KeyFactors, sm_scale: float, fact_prec: str = 'tf32x3'):
    """The fused attention on checked inputs: r (B, Nq, 3) and bias_scale (H,) fp32, key side from
    ``key_factors``. Through the autograd function when a gradient is wanted, else straight to the forward
    kernels (no saved tensors)."""
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad or r.requires_grad
                                    or bias_scale.requires_grad):
        return _GeoBiasFlashAttention.apply(q, k, v, r, bias_scale, keys, sm_scale, fact_prec)
    with _on_device(q):
        return _forward(q, k, v, r, bias_scale, keys, sm_scale, fact_prec, save=False)[0]


def fused_attention(q, k, v, r, o, d, bias_scale, sm_scale=None, factor_precision='auto'):
    """``triton_bias_attention`` without the input checks (kernel-frame coordinates)."""
    split = split_factors(factor_precision, q.dtype)
    sm_scale = 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else float(sm_scale)
    keys = key_factors(o, d, split)
    return attention_with_keys(q, k, v, r, bias_scale, keys, sm_scale)


def triton_bias_attention(q, k, v, r, o, d, bias_scale, sm_scale=None, *, factor_precision='auto'):
    """Fused attention with the point-to-line bias.

    Args:
        q: (B, H, Nq, D); k, v: (B, H, Nk, D); fp16/bf16/fp32, any strides; D in {16, 32, 64, 128}.
        r: (B, Nq, 3) fp32 query points; o, d: (B, Nk, 3) fp32 key-line origins and directions
            (may be expanded with batch stride 0). Coordinates already divided by the length scale
            (and best roughly centred: the factor products grow with |r|^2, |o|^2).
        bias_scale: (H,) fp32. sm_scale: float, default 1/sqrt(D).
        factor_precision: 'auto' (bf16x3 for 16-bit q/k/v, tf32x3 for fp32), 'bf16x3' or 'tf32x3'.
    Returns:
        (B, H, Nq, D) in q's dtype = softmax(sm_scale q k^T - bias_scale[h] dist2(r_i, line_j)) v.
    Gradients reach q, k, v, r and bias_scale (none for o, d). The key factors of (o, d) are built once per
    pair of tensors (and in-place version) and reused by later calls.
    """
    split_factors(factor_precision, q.dtype)  # validates the name
    _check_inputs(q, k, v, r, o, d, bias_scale)
    return fused_attention(q, k, v, r, o, d, bias_scale, sm_scale, factor_precision)
