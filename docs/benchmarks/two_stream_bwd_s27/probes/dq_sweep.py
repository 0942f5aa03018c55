"""dq kernel GPU time per forced config at the training shape; registers, spills and shared memory."""
import sys
import types

import torch
import triton

sys.path.insert(0, '.')
from torch.profiler import ProfilerActivity, profile

from projects.mmdet3d_plugin.attention.paths import triton as tp
from tools.benchmarks.benchmark_attention import leaves, make_case

dev = torch.device('cuda')
mod = tp.load_triton_module(True)


def C(bm, bn, w, s, reg=None):
    return triton.Config({'BLOCK_M': bm, 'BLOCK_N': bn}, num_warps=w, num_stages=s, maxnreg=reg)


DQ = [C(64, 64, 4, 3), C(64, 64, 4, 3, 128), C(64, 64, 4, 2, 128), C(64, 32, 4, 3, 128)]


def kernel_times(run, n=10):
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            run()
        torch.cuda.synchronize()
    tot = {}
    for e in prof.events():
        if e.device_type.name == 'CUDA':
            tot[e.name] = tot.get(e.name, 0) + e.device_time / n
    return tot


case = make_case('voxel0100', 1800, torch.bfloat16, dev,
                 types.SimpleNamespace(seed=0, heads=8, head_dim=32, length_scale=10.0, bias_scale=1.0))
q, k, v, r, s = leaves(case, True)


def run():
    out = tp.triton_path_attention(q, k, v, r, case['o'], case['d'], s, case['L'])
    torch.autograd.grad(out, [q, k, v, r, s], case['g'])


t = kernel_times(run)
print('autotuned:', ' '.join(f'{n[:16]}={v:.0f}' for n, v in t.items()))
for cfg in DQ:
    try:
        with mod.forced_config('dq', cfg):
            t = kernel_times(run)
        dq = [v for n, v in t.items() if 'attn_bwd_dq' in n]
        print(f'dq {cfg}: {dq[0]:.0f} us', flush=True)
    except Exception as err:
        print(f'dq {cfg}: failed {err!r}'[:300], flush=True)
try:
    for key, ck in mod._attn_bwd_dq.fn.device_caches[0][0].items():
        print('compiled dq warps', ck.metadata.num_warps, 'stages', ck.metadata.num_stages, 'regs', ck.n_regs, 'spills',
              ck.n_spills, 'shared', ck.metadata.shared)
except Exception as err:
    print('meta?', repr(err))
