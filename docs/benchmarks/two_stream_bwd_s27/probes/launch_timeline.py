"""When does each launch of a triton-path fwd+bwd happen on the host, and when does the GPU reach it?
No profiler: perf_counter at each launch, and a CUDA event recorded just before each launch."""
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F

sys.path.insert(0, '.')
from projects.mmdet3d_plugin.attention.paths import triton as tp
from tools.benchmarks.benchmark_attention import PHASES, leaves, make_case

dev = torch.device('cuda')
mod = tp.load_triton_module(True)
case = make_case('voxel0100', PHASES['train'], torch.bfloat16, dev,
                 types.SimpleNamespace(seed=0, heads=8, head_dim=32, length_scale=10.0, bias_scale=1.0))
q, k, v, r, s = leaves(case, True)
o, d, L = case['o'], case['d'], case['L']
marks = []
orig = mod.COMPILED.launch
EV = '--events' in sys.argv


def launch(name, *a, **kw):
    if EV:
        e = torch.cuda.Event(enable_timing=True)
        e.record()
    else:
        e = None
    marks.append((name, time.perf_counter(), e))
    return orig(name, *a, **kw)


orig_bwd = mod._backward


def bwd(*a, **kw):
    marks.append(('bwd_enter', time.perf_counter(), None))
    return orig_bwd(*a, **kw)


mod._backward = bwd
mod.COMPILED.launch = launch


def path():
    return tp.triton_path_attention(q, k, v, r, o, d, s, L)


def sdpa():
    return F.scaled_dot_product_attention(q, k, v)


for fn_name, fn in (('triton', path), ('sdpa', sdpa)):
    rows = []
    for i in range(60):
        torch.cuda.synchronize()
        marks.clear()
        st = torch.cuda.Event(enable_timing=True)
        en = torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        st.record()
        out = fn()
        t_ret = time.perf_counter()
        torch.autograd.grad(out, [q, k, v, r, s], case['g'], allow_unused=True)
        t_end = time.perf_counter()
        en.record()
        en.synchronize()
        row = {'ret': (t_ret - t0) * 1e6, 'end': (t_end - t0) * 1e6, 'events': st.elapsed_time(en) * 1e3}
        for n, t, e in marks:
            key = n if n not in row else n + '2'
            row[key] = (t - t0) * 1e6
            if e is not None:
                row[key + '@gpu'] = st.elapsed_time(e) * 1e3
        del out
        if i >= 10:
            rows.append(row)
    keys = rows[0].keys()
    print(fn_name, ' | '.join(f'{kk} {statistics.median(r[kk] for r in rows):.0f}' for kk in keys))
