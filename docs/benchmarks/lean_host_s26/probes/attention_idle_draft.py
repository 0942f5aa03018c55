"""The draft of tools/benchmarks/attention_idle_probe.py behind ``../run*/attention_idle.txt`` (session 26, device
calls 3 and 4), kept as it ran, with its lint fixed. Same measurements as the tool (host time, CUDA events, CUDA
events with the GPU kept busy, idle = the difference); it warms every variant up before measuring any and counts
cudaMalloc calls over all of them. Use the tool; this file records what produced those two files:
    python docs/benchmarks/lean_host_s26/probes/attention_idle_draft.py   # on a GPU, from the repository root
"""
import math
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F

sys.path.insert(0, '.')
from projects.mmdet3d_plugin.attention.path_inputs import check_geometry
from projects.mmdet3d_plugin.attention.paths import triton as tp
from projects.mmdet3d_plugin.attention.testing import sync
from tools.benchmarks import benchmark_attention as ba

mod = tp.load_triton_module(True)
dev = torch.device('cuda')
args = types.SimpleNamespace(seed=0, heads=8, head_dim=32, length_scale=10.0, bias_scale=1.0)
keep = []


def cold(f, n=200):
    ts = []
    for _ in range(n):
        sync(dev)
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e6)
        keep.clear()
    sync(dev)
    return statistics.median(ts)


def events(f, n=50, busy_first=False):
    ts = []
    for _ in range(n):
        sync(dev)
        if busy_first:
            torch.cuda._sleep(4_000_000)  # GPU busy ~2 ms: the host's launches queue behind it
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        f()
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1) * 1e3)
        keep.clear()
    return statistics.median(ts)


for phase, nq in (('train', 1800), ('infer', 900)):
    train = phase == 'train'
    case = ba.make_case('voxel0100', nq, torch.bfloat16, dev, args)
    q, k, v, r, s = ba.leaves(case, train)
    o, d = case['o'], case['d']
    g = case['g']
    split = mod.split_factors('auto', q.dtype)
    ctx = torch.inference_mode() if not train else torch.enable_grad()
    with ctx:
        o3, d3 = check_geometry(q, k, r, o, d, s)
        keys = mod.key_factors(o, d, o3, d3, split, 10.0, centred=True)
        sm = 1 / math.sqrt(32)
        fns = {
            'path (out dropped)': lambda: tp.triton_path_attention(q, k, v, r, o, d, s, 10.0),
            'path (out kept)': lambda: keep.append(tp.triton_path_attention(q, k, v, r, o, d, s, 10.0)),
            'attention_with_keys (kept)': lambda: keep.append(mod.attention_with_keys(q, k, v, r, s, keys, sm)),
            '_forward save (kept)': lambda: keep.append(mod._forward(q, k, v, r, s, keys, sm, 'tf32x3', train)),
            'sdpa (kept)': lambda: keep.append(F.scaled_dot_product_attention(q, k, v)),
            'sdpa (dropped)': lambda: F.scaled_dot_product_attention(q, k, v),
        }
        if train:

            def fb(fn):

                def run():
                    out = fn()
                    torch.autograd.grad(out, [q, k, v, r, s], g, allow_unused=True)

                return run

            fns['path fwd+bwd'] = fb(lambda: tp.triton_path_attention(q, k, v, r, o, d, s, 10.0))
            fns['sdpa fwd+bwd'] = fb(lambda: F.scaled_dot_product_attention(q, k, v))
        for f in fns.values():
            for _ in range(5):
                f()
            keep.clear()
        st0 = torch.cuda.memory_stats(dev)
        for name, f in fns.items():
            ev, evb = events(f), events(f, busy_first=True)
            print(
                f'{phase} {name:28s} host {cold(f):7.1f} us | events {ev:7.1f} us, GPU-only {evb:7.1f} us, '
                f'idle {ev - evb:6.1f} us',
                flush=True)
        st1 = torch.cuda.memory_stats(dev)
        print(phase, 'cudaMalloc calls during the probe:', st1['segment.all.allocated'] - st0['segment.all.allocated'],
              'retries', st1['num_alloc_retries'] - st0['num_alloc_retries'])
