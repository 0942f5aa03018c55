"""The probe behind ``../run1/host_pieces.txt`` (session 26, device call 2), kept as it ran, with its lint fixed.

Host time of the triton path built up layer by layer (checks, module and limits, key factors, whole path), of the
forward alone, of allocations and of bias-free SDPA, at the voxel0100 inference shape and a tiny shape; medians of
300 calls after a device synchronisation ("cold") and back to back ("warm", tiny shape only). Written for the kernel
module internals of commit 4c8e964 (``_forward``, ``key_factors``, ``_ready_kernel_module``):
    python docs/benchmarks/lean_host_s26/probes/host_pieces.py   # on a GPU, from the repository root
"""
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F

sys.path.insert(0, '.')
from projects.mmdet3d_plugin.attention.path_inputs import check_geometry, check_qkv
from projects.mmdet3d_plugin.attention.paths import triton as tp
from projects.mmdet3d_plugin.attention.testing import sync
from tools.benchmarks import benchmark_attention as ba

mod = tp.load_triton_module(True)
dev = torch.device('cuda')
args = types.SimpleNamespace(seed=0, heads=8, head_dim=32, length_scale=10.0, bias_scale=1.0)


def cold(f, n=300):  # as the benchmark: synchronised before each call
    ts = []
    for _ in range(n):
        sync(dev)
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e6)
    sync(dev)
    return statistics.median(ts)


def warm(f, n=300):  # back to back, no sync in between (tiny shapes: the GPU keeps up)
    for _ in range(20):
        f()
    sync(dev)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e6)
    sync(dev)
    return statistics.median(ts)


for label, nq, nk_cut in (('infer shape', 900, None), ('tiny', 64, 256)):
    case = ba.make_case('voxel0100', nq, torch.bfloat16, dev, args)
    q, k, v, r, s = ba.leaves(case, False)
    o, d = case['o'], case['d']
    if nk_cut:
        k, v, o, d = k[:, :, :nk_cut].contiguous(), v[:, :, :nk_cut].contiguous(), o[:, :nk_cut].contiguous(
        ), d[:, :nk_cut].contiguous()
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    with torch.inference_mode():
        split = mod.split_factors('auto', q.dtype)
        o3, d3 = check_geometry(q, k, r, o, d, s)
        keys = mod.key_factors(o, d, o3, d3, split, 10.0, centred=True)
        tp.triton_path_attention(q, k, v, r, o, d, s, 10.0)
        steps = [
            ('1 checks qkv+geometry', lambda: (check_qkv(q, k, v), check_geometry(q, k, r, o, d, s))),
            ('2 +module, limits', lambda: (check_qkv(q, k, v), check_geometry(q, k, r, o, d, s),
                                           tp._ready_kernel_module(q.device), mod.check_kernel_limits(q, k, v))),
            ('3 +key_factors, r/bs float', lambda:
             (check_qkv(q, k, v), check_geometry(q, k, r, o, d, s), tp._ready_kernel_module(q.device),
              mod.check_kernel_limits(q, k, v), mod.key_factors(o, d, o3, d3, split, 10.0, centred=True), r.float(),
              s.float())),
            ('4 whole path', lambda: tp.triton_path_attention(q, k, v, r, o, d, s, 10.0)),
            ('_forward alone', lambda: mod._forward(q, k, v, r, s, keys, 0.17, 'tf32x3', False)),
            ('empty x1', lambda: torch.empty((B, H, Nq, D), dtype=q.dtype, device=dev)),
            ('empty x3', lambda: (torch.empty(
                (B, H, Nq, D), dtype=q.dtype, device=dev), torch.empty(
                    (3, B, H, Nq, D), dtype=torch.float32, device=dev),
                                  torch.empty((3, B, H, Nq), dtype=torch.float32, device=dev))),
            ('kv_splits', lambda: mod.kv_splits(B, H, Nq, Nk, dev)),
            ('sdpa nobias', lambda: F.scaled_dot_product_attention(q, k, v)),
        ]
        for n_split in (3, 1):
            with mod.forced_kv_splits(n_split):
                for name, f in steps:
                    if n_split == 1 and name[0] not in '4_':
                        continue
                    print(
                        f'{label:11s} splits {n_split} {name:28s} cold {cold(f):7.1f} us  '
                        f'warm {warm(f) if label == "tiny" else float("nan"):7.1f} us',
                        flush=True)
