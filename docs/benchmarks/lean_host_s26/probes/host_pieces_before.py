"""The probe behind ``../host_pieces_before.txt`` (session 26, device call 1), kept as it ran, with its lint fixed.

Host time of single pieces of the triton path at the voxel0100 inference shape (bf16), medians of 300 calls each
after a device synchronisation, plus interleaved rounds of the benchmark timing. It calls the kernel module
internals as they were at commit 8dcf26f (session 25), so it runs against that commit only:
    git checkout 8dcf26f && python docs/benchmarks/lean_host_s26/probes/host_pieces_before.py   # on a GPU
"""
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F

sys.path.insert(0, '.')
import triton

from projects.mmdet3d_plugin.attention.path_inputs import check_geometry, check_qkv
from projects.mmdet3d_plugin.attention.paths.triton import load_triton_module, triton_path_attention
from projects.mmdet3d_plugin.attention.testing import median_host_ms, median_ms, sync
from tools.benchmarks import benchmark_attention as ba

mod = load_triton_module(True)
dev = torch.device('cuda')
args = types.SimpleNamespace(seed=0, heads=8, head_dim=32, length_scale=10.0, bias_scale=1.0)


def host_med(f, n=300):
    ts = []
    for _ in range(n):
        sync(dev)
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e6)
    sync(dev)
    return statistics.median(ts)


for phase, nq in (('infer', 900), ('train', 1800)):
    train = phase == 'train'
    case = ba.make_case('voxel0100', nq, torch.bfloat16, dev, args)
    rows = ba.build_rows(case, ['nobias', 'triton', 'triton-1pass', 'triton-nocache'])
    calls = {n: ba.timed_call(rows[n][0], case, train) for n in rows}
    for n, c in calls.items():
        for _ in range(5):
            c()
    sync(dev)
    print(f'== {phase}: interleaved rounds, ms by CUDA events / host us')
    for rnd in range(4):
        line = []
        for n, c in calls.items():
            h0, m0 = mod.COMPILED.hits, mod.COMPILED.misses
            ev = median_ms(c, dev, 3, 20)
            host = median_host_ms(c, dev, 20) * 1e3
            line.append(f'{n} {ev:.3f}/{host:.0f} (hits {mod.COMPILED.hits-h0} misses {mod.COMPILED.misses-m0})')
        print(f'round {rnd}: ' + ' | '.join(line), flush=True)
    # syncs inside the call?
    for n in ('triton', 'triton-1pass'):
        try:
            torch.cuda.set_sync_debug_mode('error')
            calls[n]()
            print(f'{n}: no sync flagged')
        except Exception as e:
            print(f'{n}: SYNC FLAGGED: {e!r}'[:300])
        finally:
            torch.cuda.set_sync_debug_mode(0)
    sync(dev)
    if train:
        continue
    q, k, v, r, s = ba.leaves(case, False)
    o, d = case['o'], case['d']
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    split = mod.split_factors('auto', q.dtype)
    with torch.inference_mode():
        o3, d3 = check_geometry(q, k, r, o, d, s)
        keys = mod.key_factors(o, d, o3.detach().float(), d3.detach().float(), split, 10.0, centred=True)
        pieces = {
            'empty bf16 (B,H,Nq,D)':
            lambda: torch.empty((B, H, Nq, D), dtype=q.dtype, device=dev),
            'empty fp32 (3,B,H,Nq,D)':
            lambda: torch.empty((3, B, H, Nq, D), dtype=torch.float32, device=dev),
            'check_qkv+geometry+limits':
            lambda: (check_qkv(q, k, v), check_geometry(q, k, r, o, d, s), mod.check_kernel_limits(q, k, v)),
            'key_factors lookup':
            lambda: mod.key_factors(o, d, o3.detach().float(), d3.detach().float(), split, 10.0, centred=True),
            'kv_splits':
            lambda: mod.kv_splits(B, H, Nq, Nk, dev),
            'triton.cdiv':
            lambda: triton.cdiv(900, 128),
            'current_device':
            lambda: torch.cuda.current_device(),
            '_forward split (default)':
            lambda: mod._forward(q, k, v, r, s, keys, 0.17, 'tf32x3', False),
            'triton_path_attention (default)':
            lambda: triton_path_attention(q, k, v, r, o, d, s, 10.0),
            'sdpa nobias':
            lambda: F.scaled_dot_product_attention(q, k, v),
        }
        with mod.forced_kv_splits(1):
            pieces['_forward 1pass'] = lambda: mod._forward(q, k, v, r, s, keys, 0.17, 'tf32x3', False)
            pieces['triton_path_attention 1pass'] = lambda: triton_path_attention(q, k, v, r, o, d, s, 10.0)
            for name, f in pieces.items():
                if '1pass' in name:
                    print(f'{name:35s} {host_med(f):8.1f} us host (forced 1 split)', flush=True)
        for name, f in pieces.items():
            if '1pass' not in name:
                print(f'{name:35s} {host_med(f):8.1f} us host', flush=True)
    print('kv_splits infer:', mod.kv_splits(B, H, Nq, Nk, dev), 'train:', mod.kv_splits(B, H, 1800, Nk, dev))
