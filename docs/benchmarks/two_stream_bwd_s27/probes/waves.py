"""Kernel GPU times vs batch (programs) at the training shape: do the kernels fill the GPU in whole waves?"""
import sys
import types

import torch

sys.path.insert(0, '.')
from torch.profiler import ProfilerActivity, profile

from projects.mmdet3d_plugin.attention.paths import triton as tp
from tools.benchmarks.benchmark_attention import leaves, make_case

dev = torch.device('cuda')
mod = tp.load_triton_module(True)
for B in (1, 2, 3, 4):
    import tools.benchmarks.benchmark_attention as ba
    ba.SHAPES['voxel0100']['batch'] = B
    case = make_case('voxel0100', 1800, torch.bfloat16, dev,
                     types.SimpleNamespace(seed=0, heads=8, head_dim=32, length_scale=10.0, bias_scale=1.0))
    q, k, v, r, s = leaves(case, True)

    def run():
        out = tp.triton_path_attention(q, k, v, r, case['o'], case['d'], s, case['L'])
        torch.autograd.grad(out, [q, k, v, r, s], case['g'])

    for _ in range(5):
        run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            run()
        torch.cuda.synchronize()
    tot = {}
    for e in prof.events():
        if e.device_type.name == 'CUDA':
            tot[e.name] = tot.get(e.name, 0) + e.device_time / 20
    print('B', B, ' '.join(f'{n[:20]}={t:.0f}' for n, t in sorted(tot.items(), key=lambda x: -x[1])[:5]))
for name, (compiled, tail, meta, direct) in list(mod.COMPILED._entries.items()):
    md = compiled.metadata
    print(name[0], meta, 'regs', compiled.n_regs, 'spills', compiled.n_spills, 'shared', md.shared, 'warps',
          md.num_warps)
