"""What the attention tests and benchmarks share: the dense reference, CMT's attention shapes, input
makers, a camera rig, timers and the Triton interpreter's bounds check.

Used by ``tests/attention/`` and ``tools/benchmarks/{benchmark_attention,tune_triton_attention,
check_triton_configs}.py``; written from the formula, independent of the paths it checks:

    out = softmax(sm_scale * q k^T - bias_scale[h] * dist2(r/L, line/L)) v,  sm_scale = 1/sqrt(D)
    dist2(p, (o, d)) = |p - o|^2 - ((p - o) . d)^2

Only torch and numpy at import time.
"""
import math
import statistics
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

GRAD_NAMES = ('q', 'k', 'v', 'r', 'bias_scale')

# ------------------------------------------------------------------------------------------------
# CMT's attention shapes
# ------------------------------------------------------------------------------------------------
# Per config: batch, BEV token grid (H, W), camera views, image feature map (h, w) at stride 16,
# network input image (H, W). Keys Nk = H*W + views*h*w: 128^2 + 6*20*50 = 22384 (voxel0100, 800x320),
# 180^2 + 6*40*100 = 56400 (voxel0075, 1600x640).
CMT_SHAPES = {
    'voxel0100': dict(batch=2, bev=(128, 128), views=6, feat=(20, 50), img=(320, 800)),
    'voxel0075': dict(batch=1, bev=(180, 180), views=6, feat=(40, 100), img=(640, 1600)),
}
# Queries: 900 learned + up to 900 denoising queries in training; 900 at inference.
CMT_QUERIES = {'train': 1800, 'infer': 900}
CMT_HEADS = 8
CMT_HEAD_DIM = 32
CMT_PC_RANGE = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]


def cmt_num_keys(shape: str) -> int:
    """Nk = BEV tokens + image tokens of ``CMT_SHAPES[shape]``."""
    cfg = CMT_SHAPES[shape]
    return cfg['bev'][0] * cfg['bev'][1] + cfg['views'] * cfg['feat'][0] * cfg['feat'][1]


def cmt_kernel_shape(shape: str, phase: str) -> Tuple[int, int, int, int, int, int, Tuple[int, int]]:
    """(B, H, Nq, Nk, D, BEV side, image feature (h, w)) of one CMT config and phase."""
    cfg = CMT_SHAPES[shape]
    return (cfg['batch'], CMT_HEADS, CMT_QUERIES[phase], cmt_num_keys(shape), CMT_HEAD_DIM, cfg['bev'][0], cfg['feat'])


# ------------------------------------------------------------------------------------------------
# Dense reference
# ------------------------------------------------------------------------------------------------
def reference_dist2(r: Tensor,
                    o: Tensor,
                    d: Tensor,
                    length_scale: float = 1.0,
                    dtype: torch.dtype = torch.float64) -> Tensor:
    """(B, Nq, 3), (B|1, Nk, 3) or (Nk, 3) -> (B, Nq, Nk) dist2(r/L, line/L) in ``dtype``."""
    r = r.to(dtype) / length_scale
    o = o.to(dtype) / length_scale
    d = d.to(dtype)
    if o.dim() == 2:
        o, d = o[None], d[None]
    w = r[:, :, None, :] - o[:, None, :, :]  # (B, Nq, Nk, 3)
    along = (w * d[:, None, :, :]).sum(-1)
    return (w * w).sum(-1) - along * along


def reference_attention(q: Tensor,
                        k: Tensor,
                        v: Tensor,
                        r: Optional[Tensor],
                        o: Optional[Tensor],
                        d: Optional[Tensor],
                        bias_scale: Optional[Tensor],
                        length_scale: float = 1.0,
                        extra_bias: Optional[Tensor] = None,
                        sm_scale: Optional[float] = None,
                        dtype: torch.dtype = torch.float64) -> Tensor:
    """Dense-softmax attention with the geometric bias, in ``dtype`` (fp64 by default).

    q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); r (B, Nq, 3); o, d (B|1, Nk, 3) or (Nk, 3);
    bias_scale (H,). ``r`` may be None when ``extra_bias`` (broadcastable to (B, H, Nq, Nk)) is the
    whole bias. Differentiable in every tensor input. Returns (B, H, Nq, Dv) in ``dtype``.
    """
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    if sm_scale is None:
        logits = q @ k.transpose(-1, -2) / q.shape[-1]**0.5
    else:
        logits = sm_scale * q @ k.transpose(-1, -2)
    if r is not None:
        dist2 = reference_dist2(r, o, d, length_scale, dtype)
        logits = logits - bias_scale.to(dtype)[None, :, None, None] * dist2[:, None]
    if extra_bias is not None:
        logits = logits + extra_bias.to(dtype)
    return torch.softmax(logits, dim=-1) @ v


def reference_attention_fp64(q, k, v, r, o, d, bias_scale, length_scale=1.0, extra_bias=None) -> Tensor:
    """``reference_attention`` in fp64 (the tests' reference)."""
    return reference_attention(q, k, v, r, o, d, bias_scale, length_scale, extra_bias)


def reference_dist2_fp64(r, o, d, length_scale=1.0) -> Tensor:
    return reference_dist2(r, o, d, length_scale)


def reference_by_head(q: Tensor,
                      k: Tensor,
                      v: Tensor,
                      r: Tensor,
                      o: Tensor,
                      d: Tensor,
                      bias_scale: Tensor,
                      grad_out: Optional[Tensor] = None,
                      length_scale: float = 1.0,
                      dtype: torch.dtype = torch.float32) -> Tuple[Tensor, Optional[Dict[str, Tensor]]]:
    """``reference_attention`` one (b, h) at a time, so the (Nq, Nk) bias of the CMT shapes fits.

    o, d (B|1, Nk, 3). Returns out (B, H, Nq, Dv) in ``dtype`` and, when ``grad_out`` (B, H, Nq, Dv) is
    given, the gradients of sum(out * grad_out) to q, k, v, r, bias_scale (``GRAD_NAMES``), else None.
    """
    B, H = q.shape[:2]
    out = torch.empty((*q.shape[:3], v.shape[-1]), dtype=dtype, device=q.device)
    grads = None if grad_out is None else {
        n: torch.zeros(t.shape, dtype=dtype, device=q.device)
        for n, t in zip(GRAD_NAMES, (q, k, v, r, bias_scale))
    }
    for b in range(B):
        bo = 0 if o.shape[0] == 1 else b
        for h in range(H):
            idx = (slice(b, b + 1), slice(h, h + 1))
            leaves = [
                t.detach().to(dtype).requires_grad_(grad_out is not None)
                for t in (q[idx], k[idx], v[idx], r[b:b + 1], bias_scale[h:h + 1])
            ]
            with torch.set_grad_enabled(grad_out is not None):
                ref = reference_attention(
                    *leaves[:4],
                    o[bo:bo + 1],
                    d[bo:bo + 1],
                    leaves[4],
                    length_scale,
                    sm_scale=q.shape[-1]**-0.5,
                    dtype=dtype)
            out[idx] = ref.detach()
            if grad_out is not None:
                ref.backward(grad_out[idx].to(dtype))
                for n, t in zip(GRAD_NAMES[:3], leaves[:3]):
                    grads[n][idx] = t.grad
                grads['r'][b] += leaves[3].grad[0]
                grads['bias_scale'][h] += leaves[4].grad[0]
    return out, grads


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------
def make_kernel_inputs(B: int,
                       H: int,
                       Nq: int,
                       Nk: int,
                       D: int,
                       dtype: torch.dtype,
                       layout: str,
                       device='cpu',
                       seed: int = 0):
    """Fresh random inputs of the kernel (coordinates already divided by the length scale):
    q, k, v (dtype), r, o, d, bias_scale (fp32), upstream grad (fp32).

    layout: 'shared' = o, d expanded over batch (stride 0); 'per_batch'; 'strided' = per-batch lines
    and q/k/v as transposed views of (B, N, H, D); 'far' = coordinates up to +-5 (51 m / 10 m) and
    bias_scale up to 2, so the bias dominates the logits.
    """
    g = torch.Generator(device=device).manual_seed(seed)
    rand = lambda *s: torch.randn(*s, generator=g, device=device)  # noqa: E731
    if layout == 'strided':
        q, k, v = (rand(B, n, H, D).to(dtype).transpose(1, 2) for n in (Nq, Nk, Nk))
    else:
        q, k, v = (rand(B, H, n, D).to(dtype) for n in (Nq, Nk, Nk))
    span = 5.0 if layout == 'far' else 1.5
    r = (torch.rand(B, Nq, 3, generator=g, device=device) * 2 - 1) * span
    lines_b = 1 if layout == 'shared' else B
    o = (torch.rand(lines_b, Nk, 3, generator=g, device=device) * 2 - 1) * span
    d = rand(lines_b, Nk, 3)
    d = d / d.norm(dim=-1, keepdim=True)
    if layout == 'shared':
        o, d = o.expand(B, -1, -1), d.expand(B, -1, -1)
    bias_scale = torch.rand(H, generator=g, device=device) * (2.0 if layout == 'far' else 0.5) + 0.05
    grad_out = rand(B, H, Nq, D)
    return q, k, v, r, o, d, bias_scale, grad_out


def kernel_relative_errors(q,
                           k,
                           v,
                           r,
                           o,
                           d,
                           bias_scale,
                           grad_out,
                           run: Callable,
                           ref_dtype: torch.dtype = torch.float64) -> Dict[str, list]:
    """{name: [max |x - ref|, max |ref|]} of run(q, k, v, r, o, d, bias_scale) and its gradients
    (``GRAD_NAMES``) against ``reference_attention`` in ``ref_dtype`` (length scale 1)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v, r, bias_scale)]
    out = run(leaves[0], leaves[1], leaves[2], leaves[3], o, d, leaves[4])
    out.backward(grad_out.to(out.dtype))
    ref_leaves = [t.detach().to(ref_dtype).requires_grad_(True) for t in (q, k, v, r, bias_scale)]
    ref = reference_attention(
        ref_leaves[0],
        ref_leaves[1],
        ref_leaves[2],
        ref_leaves[3],
        o,
        d,
        ref_leaves[4],
        sm_scale=1.0 / math.sqrt(q.shape[-1]),
        dtype=ref_dtype)
    ref.backward(grad_out.to(ref_dtype))

    def err(x, y):
        return [(x.to(ref_dtype) - y).abs().max().item(), y.abs().max().item()]

    errs = {'out': err(out.detach(), ref.detach())}
    for name, a, b in zip(GRAD_NAMES, leaves, ref_leaves):
        errs[name] = err(a.grad, b.grad)
    return errs


def cmt_kernel_inputs(B: int,
                      H: int,
                      Nq: int,
                      Nk: int,
                      D: int,
                      bev: int,
                      cam_hw: Tuple[int, int],
                      dtype: torch.dtype,
                      seed: int = 0,
                      dev='cuda',
                      length_scale: float = 10.0):
    """Kernel inputs at a CMT shape: q, k, v (dtype), r (B, Nq, 3), o, d (B, Nk, 3, batch stride 0),
    bias_scale (H,), grad_out (dtype).

    Keys: a bev x bev grid of vertical lines over +-51.2 m and 6 cameras' rays (centres within 1.5 m
    of the ego, directions spread horizontally); queries uniform in the BEV range, z in [-5, 3] m.
    Coordinates divided by ``length_scale``, as the module does.
    """
    g = torch.Generator(device=dev).manual_seed(seed)
    n_cam = Nk - bev * bev
    assert n_cam == 6 * cam_hw[0] * cam_hw[1], (Nk, bev, cam_hw)
    cells = (torch.arange(bev, device=dev) + 0.5) / bev * 102.4 - 51.2
    gy, gx = torch.meshgrid(cells, cells, indexing='ij')
    o_bev = torch.stack([gx.flatten(), gy.flatten(), torch.zeros_like(gx.flatten())], -1)
    d_bev = torch.tensor([0.0, 0.0, 1.0], device=dev).expand(bev * bev, 3)
    cam_centres = (torch.rand(6, 3, generator=g, device=dev) * 2 - 1) * 1.5
    o_cam = cam_centres.repeat_interleave(cam_hw[0] * cam_hw[1], 0)
    yaw = torch.rand(n_cam, generator=g, device=dev) * 2 * math.pi
    pitch = (torch.rand(n_cam, generator=g, device=dev) - 0.5) * 0.6
    d_cam = torch.stack([pitch.cos() * yaw.cos(), pitch.cos() * yaw.sin(), pitch.sin()], -1)
    o = (torch.cat([o_bev, o_cam]) / length_scale).expand(B, Nk, 3)
    d = torch.cat([d_bev, d_cam]).expand(B, Nk, 3)
    r = torch.rand(B, Nq, 3, generator=g, device=dev)
    r = torch.stack([r[..., 0] * 102.4 - 51.2, r[..., 1] * 102.4 - 51.2, r[..., 2] * 8 - 5], -1) / length_scale
    q, k, v = (torch.randn(B, H, n, D, generator=g, device=dev).to(dtype) for n in (Nq, Nk, Nk))
    bias_scale = torch.rand(H, generator=g, device=dev) * 1.5 + 0.25
    grad_out = torch.randn(B, H, Nq, D, generator=g, device=dev).to(dtype)
    return q, k, v, r, o, d, bias_scale, grad_out


def camera_rig(num_cams: int, img_hw: Tuple[int, int], height: float = 1.6, radius: float = 0.0) -> np.ndarray:
    """(N, 4, 4) fp64 lidar2img of N pinhole cameras at ``height`` m, ``radius`` m from the origin, yaws
    evenly spread around the vehicle (camera k looks along yaw 2 pi k / N), focal length = 0.8 * image
    width (about nuScenes' 70 degree field of view)."""
    H, W = img_hw
    f = 0.8 * W
    K = np.array([[f, 0, W / 2, 0], [0, f, H / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)
    mats = []
    for k in range(num_cams):
        yaw = 2 * math.pi * k / num_cams
        fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        R = np.stack([right, down, fwd])
        ext = np.eye(4)
        ext[:3, :3] = R
        ext[:3, 3] = -R @ np.array([radius * math.cos(yaw), radius * math.sin(yaw), height])
        mats.append(K @ ext)
    return np.stack(mats)


# ------------------------------------------------------------------------------------------------
# Timers
# ------------------------------------------------------------------------------------------------
def sync(device) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def median_ms(run: Callable, device, warmup: int = 5, iters: int = 20, slow_ms: Optional[float] = None) -> float:
    """Median time of run() in ms (CUDA events on GPU, perf_counter on CPU).

    The first call (compilation, autotuning) is never timed; ``max(warmup, 2)`` warm-up calls in all.
    When ``slow_ms`` is given and the second call takes longer, only 3 calls are timed.
    """
    device = torch.device(device)
    run()
    sync(device)
    t0 = time.perf_counter()
    run()
    sync(device)
    if slow_ms is not None and (time.perf_counter() - t0) * 1e3 > slow_ms:
        warmup, iters = 0, 3
    for _ in range(max(warmup - 2, 0)):
        run()
    sync(device)
    times = []
    for _ in range(iters):
        if device.type == 'cuda':
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def median_wall_ms(run: Callable, device, iters: int = 20) -> float:
    """Median wall clock of one run() in ms, synchronised before and after each call (host and launch overhead
    included: what a caller waits for). Call after ``median_ms`` or another warm-up."""
    return _median_call_ms(run, device, iters, wait=True)


def median_host_ms(run: Callable, device, iters: int = 20) -> float:
    """Median host time of one run() in ms: from the call to its return, the device idle before it (synchronised
    first) and not waited for after. Launch-bound code shows here what it costs the host; GPU-bound code returns
    early. Call after a warm-up."""
    return _median_call_ms(run, device, iters, wait=False)


def _median_call_ms(run: Callable, device, iters: int, wait: bool) -> float:
    """Median ms from calling run() (device synchronised first) to its return, or with ``wait`` to the device's
    end of its work."""
    device = torch.device(device)
    times = []
    for _ in range(iters):
        sync(device)
        t0 = time.perf_counter()
        run()
        if wait:
            sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    sync(device)
    return statistics.median(times)


def peak_mib(run: Callable, device) -> Optional[float]:
    """Peak CUDA memory above what was allocated before one run() (MiB); None on CPU."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    sync(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run()
    sync(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


# ------------------------------------------------------------------------------------------------
# Triton interpreter
# ------------------------------------------------------------------------------------------------
def install_interpreter_bounds_check() -> None:
    """TRITON_INTERPRET=1 only: every active masked load/store address of a launch must lie in one of
    its tensor arguments' extents (raises RuntimeError 'out-of-bounds ...' otherwise)."""
    from triton.runtime import interpreter as itp

    extents = []

    def extent(t):
        lo = t.data_ptr()
        span = sum((n - 1) * st for n, st in zip(t.shape, t.stride()) if n > 0)
        return lo, lo + (span + 1) * t.element_size()

    init = itp.GridExecutor._init_args_hst

    def init_and_record(self, args_dev, kwargs):
        args_hst, kwargs_hst = init(self, args_dev, kwargs)
        extents.clear()
        extents.extend(
            extent(a) for a in list(args_hst) + list(kwargs_hst.values()) if hasattr(a, 'data_ptr') and a.numel() > 0)
        return args_hst, kwargs_hst

    def check(ptrs, mask, what):
        addr = ptrs.data[np.broadcast_to(mask.data, ptrs.data.shape)].astype(np.uint64)
        if addr.size == 0:
            return
        size = np.uint64(ptrs.get_element_ty().primitive_bitwidth // 8)
        inside = np.zeros(addr.shape, dtype=bool)
        for lo, hi in extents:
            inside |= (addr >= np.uint64(lo)) & (addr + size <= np.uint64(hi))
        if not inside.all():
            raise RuntimeError(f'out-of-bounds {what}: {int((~inside).sum())} of {addr.size} active addresses '
                               f'outside every tensor argument')

    load, store = itp.InterpreterBuilder.create_masked_load, itp.InterpreterBuilder.create_masked_store

    def checked_load(self, ptrs, mask, other, *args):
        check(ptrs, mask, 'load')
        return load(self, ptrs, mask, other, *args)

    def checked_store(self, ptrs, value, mask, *args):
        check(ptrs, mask, 'store')
        return store(self, ptrs, value, mask, *args)

    itp.GridExecutor._init_args_hst = init_and_record
    itp.InterpreterBuilder.create_masked_load = checked_load
    itp.InterpreterBuilder.create_masked_store = checked_store


__all__ = [
    'GRAD_NAMES', 'CMT_SHAPES', 'CMT_QUERIES', 'CMT_HEADS', 'CMT_HEAD_DIM', 'CMT_PC_RANGE', 'cmt_num_keys',
    'cmt_kernel_shape', 'reference_dist2', 'reference_attention', 'reference_attention_fp64', 'reference_dist2_fp64',
    'reference_by_head', 'make_kernel_inputs', 'kernel_relative_errors', 'cmt_kernel_inputs', 'camera_rig', 'sync',
    'median_ms', 'median_wall_ms', 'median_host_ms', 'peak_mib', 'install_interpreter_bounds_check'
]
