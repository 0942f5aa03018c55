"""Benchmark the bias-attention paths at CMT shapes.

For each shape (voxel0100/800x320: B=2, Nk=128^2+6*20*50=22384; voxel0075/
1600x640: B=1, Nk=180^2+6*40*100=56400; H=8, head dim 32), phase (train:
Nq=1800, forward and forward+backward; infer: Nq=900, forward under
inference_mode) and dtype, every row (sdpa, svd, exact, exact-plain,
exact-nocache, triton, triton-1pass (keys not split), triton-nocache (key factors rebuilt every call), auto,
bias-free SDPA at head dim 32 and at q/k 64 with v 32, FlexAttention with a score_mod computing the same bias)
reports median ms (CUDA events, wall clock and host time per call), peak extra memory (MiB) and relative errors
(out, grad bias_scale, grad r,
grad q) against an fp64 dense reference on the same inputs, plus ratios to
bias-free SDPA. Writes markdown + JSON + PNG to --out.

    python tools/benchmarks/benchmark_attention.py                 # GPU, full shapes
    python tools/benchmarks/benchmark_attention.py --quick --device cpu --out /tmp/b   # CPU smoke run
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import sys
import traceback

import torch
import torch.nn.functional as F

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.mmdet3d_plugin.attention import (bev_key_lines, bias_attention, camera_key_lines, clear_key_factor_cache,
                                               exact_bias_attention, resolve_mode, sdpa_bias_attention,
                                               svd_bias_attention, triton_is_available, triton_path_attention)
from projects.mmdet3d_plugin.attention.paths.triton import load_triton_module
from projects.mmdet3d_plugin.attention.testing import (CMT_PC_RANGE, CMT_QUERIES, CMT_SHAPES, camera_rig,
                                                       median_host_ms, median_ms, median_wall_ms, peak_mib,
                                                       reference_by_head, sync)

PC_RANGE = CMT_PC_RANGE
SHAPES = dict(CMT_SHAPES, quick=dict(batch=1, bev=(8, 8), views=2, feat=(3, 5), img=(48, 80)))
PHASES = CMT_QUERIES
QUICK_PHASES = {'train': 40, 'infer': 20}
ROWS = ('sdpa', 'svd', 'exact', 'exact-plain', 'exact-nocache', 'triton', 'triton-1pass', 'triton-nocache',
        'triton-serial-bwd', 'auto', 'nobias', 'nobias-qk64', 'flex')
DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16, 'float32': torch.float32}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='docs/benchmarks', help='folder for the markdown, JSON and PNG')
    p.add_argument('--quick', action='store_true', help='tiny shapes (CPU smoke test)')
    p.add_argument('--shapes', nargs='+', default=None, help=f'subset of {list(SHAPES)}')
    p.add_argument('--phases', nargs='+', default=list(PHASES), choices=list(PHASES))
    p.add_argument('--rows', nargs='+', default=list(ROWS), choices=ROWS)
    p.add_argument('--dtypes', nargs='+', default=['bfloat16'], choices=list(DTYPES))
    p.add_argument('--heads', type=int, default=8)
    p.add_argument('--head-dim', type=int, default=32)
    p.add_argument('--length-scale', type=float, default=10.0)
    p.add_argument('--bias-scale', type=float, default=1.0, help='mean bias_scale (per head: 0.5x .. 1.5x this)')
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--iters', type=int, default=20)
    p.add_argument(
        '--slow-ms',
        type=float,
        default=200.0,
        help='rows slower than this per call (after the first '
        'call) get only 3 timed calls (FlexAttention backward to '
        'captured buffers is pathological)')
    p.add_argument('--no-reference', action='store_true', help='skip the fp64 reference and error columns')
    p.add_argument(
        '--profile',
        nargs='*',
        default=[],
        choices=ROWS,
        help='print the top CUDA kernels of one fwd+bwd of these '
        'rows (first shape, train phase)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--device', choices=['auto', 'cpu', 'cuda'], default='auto', help='auto: CUDA when available, else CPU')
    p.add_argument('--name', default='attention_benchmark', help='file stem of the outputs')
    args = p.parse_args(argv)
    if args.shapes is None:
        args.shapes = ['quick'] if args.quick else ['voxel0100', 'voxel0075']
    return args


# ----------------------------------------------------------------- inputs
def make_case(shape, nq, dtype, device, args):
    """Inputs of one benchmark case; every row reads the same tensors."""
    cfg = SHAPES[shape]
    gen = torch.Generator().manual_seed(args.seed)
    b, h, hd = cfg['batch'], args.heads, args.head_dim
    o_bev, d_bev = bev_key_lines(PC_RANGE, cfg['bev'])
    # N cameras on a ring of radius 0.5 m at 1.6 m, yaws spaced 2 pi / N
    rig = torch.from_numpy(camera_rig(cfg['views'], cfg['img'], radius=0.5))
    o_cam, d_cam = camera_key_lines(rig[None].expand(b, -1, 4, 4), cfg['feat'], cfg['img'])
    o = torch.cat([o_bev.expand(b, -1, 3), o_cam.float()], 1)
    d = torch.cat([d_bev.expand(b, -1, 3), d_cam.float()], 1)
    nk = o.shape[1]
    lo = torch.tensor(PC_RANGE[:3])
    hi = torch.tensor(PC_RANGE[3:])
    r = lo + torch.rand(b, nq, 3, generator=gen) * (hi - lo)
    scale = args.bias_scale * (0.5 + torch.rand(h, generator=gen))

    def rnd(*s):
        return torch.randn(*s, generator=gen).to(device=device, dtype=dtype)

    case = dict(
        q=rnd(b, h, nq, hd),
        k=rnd(b, h, nk, hd),
        v=rnd(b, h, nk, hd),
        r=r.to(device),
        o=o.to(device).contiguous(),
        d=d.to(device).contiguous(),
        bias_scale=scale.to(device),
        g=rnd(b, h, nq, hd),
        L=args.length_scale)
    case['meta'] = dict(shape=shape, B=b, H=h, Nq=nq, Nk=nk, D=hd, dtype=str(dtype).replace('torch.', ''))
    return case


def leaves(case, grad):
    """Fresh leaf tensors q, k, v, r, bias_scale (requires_grad=grad)."""
    return [case[n].detach().clone().requires_grad_(grad) for n in ('q', 'k', 'v', 'r', 'bias_scale')]


# ------------------------------------------------------------------- rows
def flex_row(case):
    """FlexAttention with the bias computed in score_mod from captured
    fp32 coordinates and a learnable per-head scale."""
    from torch.nn.attention.flex_attention import flex_attention
    compiled = torch.compile(flex_attention, dynamic=False)
    o, d, length = case['o'], case['d'], case['L']
    centre = o.mean(1, keepdim=True)
    o_n = (o - centre) / length
    ox, oy, oz = (t.contiguous() for t in o_n.unbind(-1))
    dx, dy, dz = (t.contiguous() for t in d.unbind(-1))

    def fn(q, k, v, r, s):
        r_n = (r - centre) / length
        rx, ry, rz = (t.contiguous() for t in r_n.unbind(-1))

        def score_mod(score, b, h, qi, kj):
            wx = rx[b, qi] - ox[b, kj]
            wy = ry[b, qi] - oy[b, kj]
            wz = rz[b, qi] - oz[b, kj]
            along = wx * dx[b, kj] + wy * dy[b, kj] + wz * dz[b, kj]
            dist2 = wx * wx + wy * wy + wz * wz - along * along
            return score - s[h] * dist2

        return compiled(q, k, v, score_mod=score_mod, scale=1.0 / math.sqrt(q.shape[-1]))

    return fn


def forced_splits_row(mod, case, n):
    """fn(q, k, v, r, bias_scale): the triton path with the forward's keys forced into n splits (n = 1: one pass);
    ``mod`` the triton kernel module (the row is only run where it loaded)."""
    o, d, length = case['o'], case['d'], case['L']

    def fn(q, k, v, r, s):
        with mod.forced_kv_splits(n):
            return triton_path_attention(q, k, v, r, o, d, s, length)

    return fn


def build_rows(case, names):
    """name -> (fn(q, k, v, r, bias_scale) -> out, note) or a skip reason."""
    o, d, length = case['o'], case['d'], case['L']
    dev = case['q'].device
    rows = {}

    def geo(path, **kw):
        return lambda q, k, v, r, s: path(q, k, v, r, o, d, s, length, **kw)

    def nocache(q, k, v, r, s):
        clear_key_factor_cache()
        return exact_bias_attention(q, k, v, r, o, d, s, length)

    def nobias_qk64(q, k, v, r, s):
        pad = (0, 64 - q.shape[-1])
        return F.scaled_dot_product_attention(F.pad(q, pad), F.pad(k, pad), v, scale=1.0 / math.sqrt(q.shape[-1]))

    triton_ok = False
    try:
        mod = load_triton_module(required=False)
        triton_ok = mod is not None and triton_is_available(dev)
    except Exception as err:  # a broken kernel module: report, go on
        triton_ok = f'triton module failed: {err!r}'
    auto_mode = resolve_mode('auto', case['q'], case['v'])

    def triton_nocache(q, k, v, r, s):
        clear_key_factor_cache()
        return triton_path_attention(q, k, v, r, o, d, s, length)

    def triton_serial_bwd(q, k, v, r, s):
        with mod.serial_backward():
            return triton_path_attention(q, k, v, r, o, d, s, length)

    table = {
        'sdpa': (geo(sdpa_bias_attention), 'dense mask -> SDPA'),
        'svd': (geo(svd_bias_attention), 'dense -> svd_lowrank(10) -> SDPA'),
        'exact': (geo(exact_bias_attention), 'phi/psi hi+lo factors -> SDPA (key factors cached)'),
        'exact-plain': (geo(exact_bias_attention, compensated=False), 'phi/psi factors in the attention dtype -> SDPA'),
        'exact-nocache': (nocache, 'exact, key factors rebuilt every call'),
        'triton': (geo(triton_path_attention), 'fused Triton kernel (keys split when queries leave SMs idle)'),
        'triton-1pass': (forced_splits_row(mod, case, 1), 'fused Triton kernel, keys in one pass (no split)'),
        'triton-nocache': (triton_nocache, 'triton, key factors rebuilt every call'),
        'triton-serial-bwd': (triton_serial_bwd, 'triton, the backward kernels on one stream'),
        'auto': (geo(bias_attention, mode='auto'), f'auto -> {auto_mode}'),
        'nobias':
        (lambda q, k, v, r, s: F.scaled_dot_product_attention(q, k, v), 'bias-free SDPA, head dim 32 (the floor)'),
        'nobias-qk64': (nobias_qk64, 'bias-free SDPA, q/k zero-padded to 64'),
    }
    for name in names:
        if name.startswith('triton') and triton_ok is not True:
            rows[name] = triton_ok or 'triton not available on this device'
        elif name == 'flex':
            if dev.type != 'cuda':
                rows[name] = 'FlexAttention rows run on CUDA only'
                continue
            try:
                rows[name] = (flex_row(case), 'FlexAttention score_mod, compiled')
            except Exception as err:
                rows[name] = f'FlexAttention unavailable: {err!r}'
        else:
            rows[name] = table[name]
    return rows


# ---------------------------------------------------------------- measure
def reference(case, train):
    """fp64 dense reference, one (b, h) at a time: out and grads
    (q, bias_scale, r) for the loss sum(out * g)."""
    q, k, v, r, s = leaves(case, False)
    out, grads = reference_by_head(
        q, k, v, r, case['o'], case['d'], s, case['g'] if train else None, length_scale=case['L'], dtype=torch.float64)
    res = dict(out=out)
    if train:
        res.update(q=grads['q'], bias_scale=grads['bias_scale'], r=grads['r'])
    return res


def rel_err(a, b):
    return float((a.double() - b).norm() / b.norm().clamp_min(1e-30))


def timed_call(fn, case, train):
    """The benchmark's unit of work as a no-argument callable on fresh leaves, returning the output: train: the
    forward and ``torch.autograd.grad`` to q, k, v, r and bias_scale; infer: the forward under inference_mode."""
    q, k, v, r, s = leaves(case, train)
    if train:
        inputs = [q, k, v, r, s]

        def run():
            out = fn(q, k, v, r, s)
            torch.autograd.grad(out, inputs, case['g'], allow_unused=True)
            return out
    else:

        def run():
            with torch.inference_mode():
                return fn(q, k, v, r, s)

    return run


def measure_row(fn, case, train, ref, args):
    """Timings, peak memory and (when ``ref`` is given) errors of a row."""
    dev = case['q'].device
    res = {}
    if train:
        q, k, v, r, s = leaves(case, train)

        def fwd():
            return fn(q, k, v, r, s)

        fwd_bwd = timed_call(fn, case, train)
        res['fwd_ms'] = median_ms(fwd, dev, args.warmup, args.iters, args.slow_ms)
        res['fwd_wall_ms'] = median_wall_ms(fwd, dev, args.iters)
        res['fwd_host_ms'] = median_host_ms(fwd, dev, args.iters)
        res['fwd_bwd_ms'] = median_ms(fwd_bwd, dev, args.warmup, args.iters, args.slow_ms)
        res['fwd_bwd_wall_ms'] = median_wall_ms(fwd_bwd, dev, args.iters)
        res['fwd_bwd_host_ms'] = median_host_ms(fwd_bwd, dev, args.iters)
        res['peak_mib'] = peak_mib(fwd_bwd, dev)
        if ref is not None:
            out = fn(q, k, v, r, s)
            grads = torch.autograd.grad(out, [q, s, r], case['g'], allow_unused=True)
            res['out_err'] = rel_err(out.detach(), ref['out'])
            for name, gr in zip(('q', 'bias_scale', 'r'), grads):
                res[f'grad_{name}_err'] = None if gr is None else rel_err(gr, ref[name])
    else:
        fwd = timed_call(fn, case, train)
        res['fwd_ms'] = median_ms(fwd, dev, args.warmup, args.iters, args.slow_ms)
        res['fwd_wall_ms'] = median_wall_ms(fwd, dev, args.iters)
        res['fwd_host_ms'] = median_host_ms(fwd, dev, args.iters)
        res['peak_mib'] = peak_mib(fwd, dev)
        if ref is not None:
            res['out_err'] = rel_err(fwd(), ref['out'])
    return res


def profile_row(fn, case, name):
    from torch.profiler import ProfilerActivity, profile
    q, k, v, r, s = leaves(case, True)
    fn(q, k, v, r, s)  # warm
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        out = fn(q, k, v, r, s)
        torch.autograd.grad(out, [q, k, v, r, s], case['g'], allow_unused=True)
        torch.cuda.synchronize()
    print(f'\n### profile: {name}\n')
    print(prof.key_averages().table(sort_by='cuda_time_total', row_limit=15))


# ----------------------------------------------------------------- report
def fmt(x, spec):
    return '-' if x is None else format(x, spec)


def markdown(results, env):
    lines = [
        f"# Bias-attention benchmark ({env['device']})", '', f"torch {env['torch']}, cuDNN {env['cudnn']}, triton "
        f"{env['triton']}; median of {env['iters']} calls after "
        f"{env['warmup']} warm-ups; peak = extra memory of one call; "
        'errors are relative Frobenius norms vs an fp64 dense '
        'reference on the same inputs; x = ratio to bias-free SDPA '
        '(head dim 32); ms: CUDA events; wall: wall clock of one synchronised call (host overhead included), '
        'ratio to bias-free in brackets; host: time until the call returns, GPU idle before and not waited for '
        '(the launch work).', ''
    ]
    groups = {}
    for res in results:
        m = res['meta']
        key = (m['shape'], res['phase'], m['dtype'])
        groups.setdefault(key, []).append(res)
    for (shape, phase, dtype), rows in groups.items():
        m = rows[0]['meta']
        lines += [
            f"## {shape} {phase} {dtype}: B={m['B']} H={m['H']} "
            f"Nq={m['Nq']} Nk={m['Nk']} D={m['D']}", '', '| row | fwd ms | fwd x | fwd+bwd ms | fwd+bwd x | fwd wall '
            'ms (x) | fwd+bwd wall ms (x) | fwd host ms | fwd+bwd host ms | peak MiB | mem x | out err | '
            'grad bias_scale err | grad r err | grad q err | note |', '| --- | ---: | ---: | ---: | ---: | ---: | '
            '---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |'
        ]
        for res in rows:
            if 'skipped' in res:
                lines.append(f"| {res['row']} | | | | | | | | | | | | | | | "
                             f"skipped: {res['skipped']} |")
                continue
            lines.append(f"| {res['row']} | {fmt(res.get('fwd_ms'), '.3f')} | "
                         f"{fmt(res.get('fwd_x'), '.2f')} | "
                         f"{fmt(res.get('fwd_bwd_ms'), '.3f')} | "
                         f"{fmt(res.get('fwd_bwd_x'), '.2f')} | "
                         f"{wall(res, 'fwd')} | {wall(res, 'fwd_bwd')} | "
                         f"{fmt(res.get('fwd_host_ms'), '.3f')} | {fmt(res.get('fwd_bwd_host_ms'), '.3f')} | "
                         f"{fmt(res.get('peak_mib'), '.1f')} | "
                         f"{fmt(res.get('mem_x'), '.2f')} | "
                         f"{fmt(res.get('out_err'), '.1e')} | "
                         f"{fmt(res.get('grad_bias_scale_err'), '.1e')} | "
                         f"{fmt(res.get('grad_r_err'), '.1e')} | "
                         f"{fmt(res.get('grad_q_err'), '.1e')} | {res['note']} |")
        lines.append('')
    return '\n'.join(lines)


def wall(res, key):
    """'1.234 (1.56)': the wall clock of one call and its ratio to bias-free; '-' when not measured."""
    ms = res.get(f'{key}_wall_ms')
    return '-' if ms is None else f"{ms:.3f} ({fmt(res.get(f'{key}_wall_x'), '.2f')})"


def add_ratios(rows):
    base = next((r for r in rows if r['row'] == 'nobias' and 'skipped' not in r), None)
    if base is None:
        return
    for res in rows:
        for key, out in (('fwd_ms', 'fwd_x'), ('fwd_bwd_ms', 'fwd_bwd_x'), ('peak_mib', 'mem_x'),
                         ('fwd_wall_ms', 'fwd_wall_x'), ('fwd_bwd_wall_ms', 'fwd_bwd_wall_x')):
            if res.get(key) is not None and base.get(key):
                res[out] = res[key] / base[key]


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    groups = {}
    for res in results:
        if 'skipped' in res or 'error' in res:
            continue
        m = res['meta']
        groups.setdefault((m['shape'], res['phase'], m['dtype']), []).append(res)
    if not groups:
        return False
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, ((shape, phase, dtype), rows) in zip(axes[0], groups.items()):
        key = 'fwd_bwd_ms' if phase == 'train' else 'fwd_ms'
        names = [r['row'] for r in rows if r.get(key) is not None]
        vals = [r[key] for r in rows if r.get(key) is not None]
        ax.bar(range(len(vals)), vals, color='tab:blue')
        ax.set_yscale('log')
        ax.set_xticks(range(len(vals)), names, rotation=60, ha='right', fontsize=8)
        ax.set_ylabel(('fwd+bwd' if phase == 'train' else 'fwd') + ' ms (log)')
        ax.set_title(f'{shape} {phase} {dtype}', fontsize=9)
        for i, r in enumerate(rows):
            x = r.get('fwd_bwd_x' if phase == 'train' else 'fwd_x')
            if x is not None and r.get(key) is not None:
                ax.annotate(f'{x:.2f}x', (i, r[key]), ha='center', va='bottom', fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def environment(dev, args):
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else \
        f'CPU ({platform.processor() or platform.machine()})'
    return dict(
        device=name,
        torch=torch.__version__,
        cudnn=torch.backends.cudnn.version(),
        triton=triton_version,
        iters=args.iters,
        warmup=args.warmup,
        quick=args.quick,
        length_scale=args.length_scale,
        bias_scale=args.bias_scale)


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'auto':
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    dev = torch.device(args.device)
    if args.quick:
        args.warmup, args.iters = min(args.warmup, 1), min(args.iters, 3)
    phases = QUICK_PHASES if args.quick else PHASES
    env = environment(dev, args)
    results = []
    for shape in args.shapes:
        for phase in args.phases:
            train = phase == 'train'
            for dtype_name in args.dtypes:
                case = make_case(shape, phases[phase], DTYPES[dtype_name], dev, args)
                ref = None
                if not args.no_reference:
                    ref = reference(case, train)
                    sync(dev)
                    torch.cuda.empty_cache() if dev.type == 'cuda' else None
                rows = build_rows(case, args.rows)
                group = []
                for name, row in rows.items():
                    res = dict(row=name, phase=phase, meta=case['meta'])
                    if isinstance(row, str):
                        res.update(skipped=row, note=row)
                    else:
                        fn, res['note'] = row
                        # Bias-free rows compute another function: no errors.
                        row_ref = None if name.startswith('nobias') else ref
                        try:
                            res.update(measure_row(fn, case, train, row_ref, args))
                        except Exception as err:  # OOM, kernel failure
                            traceback.print_exc()
                            res.update(skipped=f'failed: {err!r}'[:300], note='failed')
                        clear_key_factor_cache()
                        if dev.type == 'cuda':
                            torch.cuda.empty_cache()
                    group.append(res)
                    print(f"{shape} {phase} {dtype_name} {name}: "
                          f"{ {k: v for k, v in res.items() if k != 'meta'} }",
                          flush=True)
                add_ratios(group)
                results.extend(group)
                if args.profile and dev.type == 'cuda' and train and \
                        shape == args.shapes[0]:
                    for name in args.profile:
                        if not isinstance(rows.get(name), str) and \
                                name in rows:
                            profile_row(rows[name][0], case, name)
                del case, ref
    os.makedirs(args.out, exist_ok=True)
    md = markdown(results, env)
    print('\n' + md)
    stem = osp.join(args.out, args.name)
    with open(stem + '.md', 'w') as f:
        f.write(md + '\n')
    with open(stem + '.json', 'w') as f:
        json.dump(dict(env=env, results=results), f, indent=1)
    if plot(results, stem + '.png'):
        print(f'wrote {stem}.md, .json, .png')
    return results


if __name__ == '__main__':
    main()
