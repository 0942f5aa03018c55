"""Where one attention call's time goes: a per-kernel timeline of host launches and GPU execution.

For each row of ``benchmark_attention.py`` (same inputs: ``make_case``/``build_rows``) and phase (train: forward
and backward through ``torch.autograd.grad``; infer: forward under ``inference_mode``), the call is run as the
benchmark times it (``timed_call``; the device synchronised before and after) under ``torch.profiler``. From the
profiler's trace, per call and per kernel: when the host issued the launch and when the kernel ran on the GPU, both in
microseconds from the call's start, and how long the GPU sat idle before it. The summary splits the call into
GPU busy time and GPU idle time (waiting for the host). With ``--cprofile`` the host's Python work of the call is
also broken down by function (``cProfile``, ``tottime`` per call; the profiler slows the host, so read the shares,
not the absolute times). Writes markdown and JSON to --out.

    python tools/benchmarks/attention_timeline.py --rows triton nobias --phases train infer --cprofile
"""
import argparse
import cProfile
import io
import json
import os
import os.path as osp
import pstats
import statistics
import sys
import tempfile

import torch

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.mmdet3d_plugin.attention import clear_key_factor_cache
from projects.mmdet3d_plugin.attention.paths.triton import load_triton_module
from projects.mmdet3d_plugin.attention.testing import sync
from tools.benchmarks.benchmark_attention import (DTYPES, PHASES, SHAPES, build_rows, forced_splits_row, make_case,
                                                  timed_call)

LAUNCH_CALLS = ('cudaLaunchKernel', 'cuLaunchKernel', 'cuLaunchKernelEx', 'cudaLaunchKernelExC')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shape', default='voxel0100', choices=sorted(SHAPES))
    p.add_argument('--dtype', default='bfloat16', choices=sorted(DTYPES))
    p.add_argument('--phases', nargs='+', default=['train', 'infer'], choices=sorted(PHASES))
    p.add_argument('--rows', nargs='+', default=['triton', 'triton-1pass', 'nobias'])
    p.add_argument(
        '--kv-splits',
        type=int,
        nargs='*',
        default=[],
        help='also the triton row with the keys forced into each of these numbers of splits')
    p.add_argument('--calls', type=int, default=7, help='profiled calls per row (the median call is shown)')
    p.add_argument('--cprofile', action='store_true', help='also break the host work down by Python function')
    p.add_argument('--cprofile-calls', type=int, default=200)
    p.add_argument('--out', default='work_dirs/attention_timeline')
    p.add_argument('--seed', type=int, default=0)
    # make_case's knobs, as in benchmark_attention.py
    p.add_argument('--heads', type=int, default=8)
    p.add_argument('--head-dim', type=int, default=32)
    p.add_argument('--length-scale', type=float, default=10.0)
    p.add_argument('--bias-scale', type=float, default=1.0)
    return p.parse_args(argv)


def split_rows(case, splits) -> dict:
    """'triton-split{n}': the triton path with the forward's keys forced into n splits."""
    if not splits:
        return {}
    mod = load_triton_module(required=True)
    return {
        f'triton-split{n}': (forced_splits_row(mod, case, n), f'triton, keys forced into {n} splits')
        for n in splits
    }


def trace_calls(run, calls: int) -> list:
    """Chrome-trace events of ``calls`` calls of run(), each inside a 'timeline_call' annotation after a sync."""
    from torch.profiler import ProfilerActivity, profile, record_function
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            sync('cuda')
            with record_function('timeline_call'):
                run()
            sync('cuda')
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'trace.json')
        prof.export_chrome_trace(path)
        with open(path) as f:
            return json.load(f)['traceEvents']


def short_name(kernel: str) -> str:
    """A readable kernel name: Triton's function name, or the C++ name without return type, templates, namespaces
    and argument list."""
    depth, out = 0, []
    for ch in kernel:  # drop template arguments
        depth += ch == '<'
        if depth == 0:
            out.append(ch)
        depth -= ch == '>'
    name = ''.join(out).strip()
    if name.endswith(')'):  # drop the argument list
        name = name[:name.rindex('(')]
    return name.split('::')[-1].split(' ')[-1][:60]


def call_timelines(events: list) -> list:
    """Per profiled call: dict(host_us (the call's host duration), kernels=[dict(name, launch_us, start_us,
    end_us, idle_us)]), times in microseconds from the call's start.

    A kernel belongs to the call during which it ran on the GPU (calls are separated by synchronisations); its
    launch comes from the runtime event with the same correlation id (None when the trace has none in the call).
    """
    calls = sorted((e for e in events
                    if e.get('name') == 'timeline_call' and e.get('ph') == 'X' and e.get('cat') == 'user_annotation'),
                   key=lambda e: e['ts'])  # the host's annotation (the trace also has a GPU copy of it)
    launches = {
        e['args']['correlation']: e
        for e in events if e.get('ph') == 'X' and e.get('name') in LAUNCH_CALLS and 'correlation' in e.get('args', {})
    }
    kernels = sorted((e for e in events if e.get('ph') == 'X' and e.get('cat') == 'kernel'), key=lambda e: e['ts'])
    out = []
    for i, call in enumerate(calls):
        t0 = call['ts']
        t1 = calls[i + 1]['ts'] if i + 1 < len(calls) else float('inf')
        rows, gpu_free = [], 0.0
        for k in kernels:
            if not t0 <= k['ts'] < t1:
                continue
            launch = launches.get(k.get('args', {}).get('correlation'))
            launch_us = launch['ts'] - t0 if launch is not None and t0 <= launch['ts'] < t1 else None
            start, end = k['ts'] - t0, k['ts'] + k['dur'] - t0
            rows.append(
                dict(
                    name=short_name(k['name']),
                    launch_us=launch_us,
                    start_us=start,
                    end_us=end,
                    idle_us=max(0.0, start - gpu_free)))
            gpu_free = max(gpu_free, end)
        out.append(dict(host_us=call['dur'], kernels=rows))
    return out


def summarize(timeline: dict) -> dict:
    ks = timeline['kernels']
    end = max((k['end_us'] for k in ks), default=0.0)
    busy = sum(k['end_us'] - k['start_us'] for k in ks)
    return dict(
        span_us=max(end, timeline['host_us']),
        gpu_busy_us=busy,
        gpu_idle_us=sum(k['idle_us'] for k in ks),
        first_launch_us=next((k['launch_us'] for k in ks if k['launch_us'] is not None), None),
        host_us=timeline['host_us'],
        kernels=len(ks))


def host_profile(run, calls: int, top: int = 25) -> str:
    """cProfile of ``calls`` calls (synchronised between calls): the top functions by own time per call."""
    prof = cProfile.Profile()
    for _ in range(calls):
        sync('cuda')
        prof.enable()
        run()
        prof.disable()
    sync('cuda')
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats('tottime').print_stats(top)
    return f'({calls} calls; divide the times by {calls} for one call)\n' + buf.getvalue()


def _us(x) -> str:
    return '?' if x is None else f'{x:.0f}'


def markdown(results: list, env: dict) -> str:
    lines = [f"# Attention call timeline ({env['device']}, torch {env['torch']}, triton {env['triton']})", '']
    lines += [
        '| shape | phase | row | span us | GPU busy us | GPU idle us | first launch us | host us | kernels |',
        '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |'
    ]
    for res in results:
        s = res['summary']
        lines.append(f"| {res['shape']} | {res['phase']} | {res['row']} | {s['span_us']:.0f} | {s['gpu_busy_us']:.0f} "
                     f"| {s['gpu_idle_us']:.0f} | {_us(s['first_launch_us'])} | {s['host_us']:.0f} "
                     f"| {s['kernels']} |")
    for res in results:
        lines += [
            '', f"## {res['phase']} {res['row']}: the median call (us from its start)", '',
            '| kernel | launched | GPU start | GPU end | GPU idle before |', '| --- | ---: | ---: | ---: | ---: |'
        ]
        for k in res['timeline']['kernels']:
            lines.append(f"| {k['name']} | {_us(k['launch_us'])} | {k['start_us']:.0f} | {k['end_us']:.0f} "
                         f"| {k['idle_us']:.0f} |")
        if res.get('host_profile'):
            lines += ['', '```', res['host_profile'].strip(), '```']
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit('attention_timeline.py needs a CUDA device (it reads GPU kernel times)')
    import triton
    dev = torch.device('cuda')
    env = dict(device=torch.cuda.get_device_name(dev), torch=torch.__version__, triton=triton.__version__)
    results = []
    for phase in args.phases:
        train = phase == 'train'
        case = make_case(args.shape, PHASES[phase], DTYPES[args.dtype], dev, args)
        rows = build_rows(case, args.rows)
        rows.update(split_rows(case, args.kv_splits))
        for name, row in rows.items():
            if isinstance(row, str):
                print(f'{phase} {name}: skipped ({row})')
                continue
            run = timed_call(row[0], case, train)
            for _ in range(5):  # compile, autotune, fill the caches
                run()
            sync(dev)
            timelines = call_timelines(trace_calls(run, args.calls))
            summaries = [summarize(t) for t in timelines]
            order = sorted(range(len(summaries)), key=lambda i: summaries[i]['span_us'])
            median = order[len(order) // 2]
            res = dict(
                shape=args.shape,
                phase=phase,
                row=name,
                summary=summaries[median],
                timeline=timelines[median],
                spans_us=[s['span_us'] for s in summaries],
                median_span_us=statistics.median(s['span_us'] for s in summaries))
            if args.cprofile:
                res['host_profile'] = host_profile(run, args.cprofile_calls)
            results.append(res)
            print(f"{phase} {name}: {res['summary']}", flush=True)
            clear_key_factor_cache()
        del case
        torch.cuda.empty_cache()
    os.makedirs(args.out, exist_ok=True)
    md = markdown(results, env)
    print('\n' + md)
    with open(osp.join(args.out, 'attention_timeline.md'), 'w') as f:
        f.write(md + '\n')
    with open(osp.join(args.out, 'attention_timeline.json'), 'w') as f:
        json.dump(dict(env=env, results=results), f, indent=1)
    return results


if __name__ == '__main__':
    main()
