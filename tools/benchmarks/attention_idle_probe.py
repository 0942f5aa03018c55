"""How long the GPU waits for the host in one attention call, and which layer of the triton path it waits for.

No profiler (it slows the host, which is what is measured here). For each variant, three medians of one call:
- host us: from the call to its return, the device synchronised before (as ``benchmark_attention.py`` times it);
- events us: the call by CUDA events, the device idle before it (what ``benchmark_attention.py`` reports);
- GPU-only us: the call by CUDA events while the GPU is kept busy by ``torch.cuda._sleep`` as the host issues it, so
  every launch is queued before the call's first kernel starts: the GPU work alone.
idle us = events - GPU-only: the GPU's wait for the host, before the first kernel and between kernels.

Variants (``benchmark_attention.make_case`` inputs, bf16): the whole triton path with its output dropped at once or
kept (dropping frees the autograd graph inside the call), the path minus its checks and key-factor lookup
(``attention_with_keys``), the forward alone (``_forward``), bias-free SDPA; at the training shape also forward +
backward (``torch.autograd.grad``) of the path and of SDPA. Writes markdown and JSON to --out.

    python tools/benchmarks/attention_idle_probe.py --out work_dirs/attention_idle
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.mmdet3d_plugin.attention.path_inputs import check_geometry
from projects.mmdet3d_plugin.attention.paths import triton as triton_path
from projects.mmdet3d_plugin.attention.testing import sync
from tools.benchmarks.benchmark_attention import DTYPES, PHASES, SHAPES, leaves, make_case


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shape', default='voxel0100', choices=sorted(SHAPES))
    p.add_argument('--dtype', default='bfloat16', choices=sorted(DTYPES))
    p.add_argument('--phases', nargs='+', default=['train', 'infer'], choices=sorted(PHASES))
    p.add_argument('--calls', type=int, default=50, help='calls per CUDA-event median')
    p.add_argument('--host-calls', type=int, default=200, help='calls per host-time median')
    p.add_argument('--sleep-cycles', type=int, default=4_000_000, help='GPU busy-wait before a GPU-only call (~2 ms)')
    p.add_argument('--out', default='work_dirs/attention_idle')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


class Probe:
    """The three medians of a no-argument callable on ``device``. Outputs the callable stores in ``self.keep``
    are freed after each timed call, outside the timing."""

    def __init__(self, device, calls: int, host_calls: int, sleep_cycles: int):
        self.device, self.calls, self.host_calls, self.sleep_cycles = device, calls, host_calls, sleep_cycles
        self.keep = []

    def host_us(self, f) -> float:
        times = []
        for _ in range(self.host_calls):
            sync(self.device)
            t0 = time.perf_counter()
            f()
            times.append((time.perf_counter() - t0) * 1e6)
            self.keep.clear()
        sync(self.device)
        return statistics.median(times)

    def events_us(self, f, gpu_busy: bool) -> float:
        times = []
        for _ in range(self.calls):
            sync(self.device)
            if gpu_busy:
                torch.cuda._sleep(self.sleep_cycles)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            f()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3)
            self.keep.clear()
        return statistics.median(times)

    def measure(self, f) -> dict:
        for _ in range(5):  # compile, autotune, fill the caches
            f()
        self.keep.clear()
        events, gpu_only = self.events_us(f, False), self.events_us(f, True)
        return dict(host_us=self.host_us(f), events_us=events, gpu_only_us=gpu_only, idle_us=events - gpu_only)


def variants(case, phase: str, keep: list) -> dict:
    """name -> no-argument callable (run under the phase's grad mode)."""
    mod = triton_path.load_triton_module(required=True)
    train = phase == 'train'
    q, k, v, r, s = leaves(case, train)
    o, d, length = case['o'], case['d'], case['L']
    check_geometry(q, k, r, o, d, s)
    keys = mod.key_factors(o, d, mod.split_factors('auto', q.dtype), length, centred=True)
    sm_scale = 1.0 / math.sqrt(q.shape[-1])

    def path():
        return triton_path.triton_path_attention(q, k, v, r, o, d, s, length)

    rows = {
        'path (output dropped)': path,
        'path (output kept)': lambda: keep.append(path()),
        'attention_with_keys (kept)': lambda: keep.append(mod.attention_with_keys(q, k, v, r, s, keys, sm_scale)),
        '_forward (kept)': lambda: keep.append(mod._forward(q, k, v, r, s, keys, sm_scale, 'tf32x3', train)),
        'bias-free SDPA (kept)': lambda: keep.append(F.scaled_dot_product_attention(q, k, v)),
        'bias-free SDPA (dropped)': lambda: F.scaled_dot_product_attention(q, k, v),
    }
    if train:

        def fwd_bwd(fn):

            def run():
                torch.autograd.grad(fn(), [q, k, v, r, s], case['g'], allow_unused=True)

            return run

        rows['path fwd+bwd'] = fwd_bwd(path)
        rows['bias-free SDPA fwd+bwd'] = fwd_bwd(lambda: F.scaled_dot_product_attention(q, k, v))
    return rows


def markdown(results: list, env: dict) -> str:
    lines = [
        f"# Attention idle probe ({env['device']}, torch {env['torch']}, triton {env['triton']})", '',
        'Medians of one call in us: host (device synchronised before), CUDA events, CUDA events with the GPU kept '
        'busy while the host issues the call (GPU-only), idle = events - GPU-only.', '',
        '| phase | variant | host us | events us | GPU-only us | idle us |', '| --- | --- | ---: | ---: | ---: | ---: |'
    ]
    for res in results:
        lines.append(f"| {res['phase']} | {res['variant']} | {res['host_us']:.1f} | {res['events_us']:.1f} | "
                     f"{res['gpu_only_us']:.1f} | {res['idle_us']:.1f} |")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit('attention_idle_probe.py needs a CUDA device (it times the GPU against the host)')
    dev = torch.device('cuda')
    import triton
    env = dict(device=torch.cuda.get_device_name(dev), torch=torch.__version__, triton=triton.__version__)
    probe = Probe(dev, args.calls, args.host_calls, args.sleep_cycles)
    case_args = types.SimpleNamespace(seed=args.seed, heads=8, head_dim=32, length_scale=10.0, bias_scale=1.0)
    results = []
    for phase in args.phases:
        case = make_case(args.shape, PHASES[phase], DTYPES[args.dtype], dev, case_args)
        grad_mode = torch.enable_grad() if phase == 'train' else torch.inference_mode()
        with grad_mode:
            mallocs = torch.cuda.memory_stats(dev)['segment.all.allocated']
            for name, f in variants(case, phase, probe.keep).items():
                res = dict(phase=phase, variant=name, **probe.measure(f))
                results.append(res)
                print(
                    f"{phase} {name:28s} host {res['host_us']:7.1f} us | events {res['events_us']:7.1f} us, "
                    f"GPU-only {res['gpu_only_us']:7.1f} us, idle {res['idle_us']:6.1f} us",
                    flush=True)
            mallocs = torch.cuda.memory_stats(dev)['segment.all.allocated'] - mallocs
        print(f'{phase}: cudaMalloc calls while measuring (after warm-up): {mallocs}')
        env[f'{phase}_cuda_mallocs'] = mallocs
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'attention_idle.json'), 'w') as f:
        json.dump(dict(environment=env, results=results), f, indent=1)
    with open(osp.join(args.out, 'attention_idle.md'), 'w') as f:
        f.write(markdown(results, env))
    print('wrote', osp.join(args.out, 'attention_idle.md'))


if __name__ == '__main__':
    main()
