"""Tune, check and time the fused Triton geometric-bias attention on one GPU (< 3 min on an H100).

    python tools/benchmarks/tune_triton_attention.py --out docs/benchmarks/triton_attention_tune.json

1. Autotunes the three kernels (forward, dk/dv, dq) at the CMT voxel0100 training shape
   (B=2, H=8, Nq=1800, Nk=128^2 + 6*20*50 = 22384, head dim 32, bf16) and prints the winners.
2. Checks the output and the gradients (q, k, v, r, bias_scale) against a dense fp32 reference
   computed one (b, h) at a time, next to the errors of the dense-mask SDPA path (bf16 mask
   with a gradient) against the same reference.
3. Times forward and forward+backward (CUDA events, median) and peak memory against bias-free
   F.scaled_dot_product_attention (default, flash, cuDNN and efficient backends) at the
   training, inference (Nq=900) and voxel0075 (B=1, Nk=180^2 + 6*40*100 = 56400) shapes, plus
   the same Triton kernels with the bias switched off (triton_no_bias): ours / no_bias is the
   cost of the bias, no_bias / sdpa the Triton-vs-cuDNN/flash gap.
4. Lists the CUDA kernels of one forward+backward (torch.profiler) and writes everything as JSON.
"""
import argparse
import importlib
import json
import os
import os.path as osp
import sys
import time

import torch
import torch.nn.functional as F

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.mmdet3d_plugin.attention.testing import (GRAD_NAMES, cmt_kernel_inputs, cmt_kernel_shape, median_ms,
                                                       peak_mib, reference_by_head, reference_dist2)

ta = importlib.import_module('projects.mmdet3d_plugin.attention.paths.triton_kernels')

SHAPES = {  # name: (B, H, Nq, Nk, D, BEV side, camera feature (h, w))
    'v0100_train': cmt_kernel_shape('voxel0100', 'train'),
    'v0100_infer': cmt_kernel_shape('voxel0100', 'infer'),
    'v0075_train': cmt_kernel_shape('voxel0075', 'train'),
}


def reference_errors(q, k, v, r, o, d, bs, grad_out, out, grads):
    """Max |x - ref| / max |ref| vs a dense fp32 reference run one (b, h) at a time."""
    ref_out, ref_grads = reference_by_head(q, k, v, r, o, d, bs, grad_out, dtype=torch.float32)
    pairs = [('out', out, ref_out)] + [(n, g, ref_grads[n]) for n, g in zip(GRAD_NAMES, grads)]
    return {n: ((x.float() - y).abs().max() / y.abs().max()).item() for n, x, y in pairs}


def ours(factor_precision):

    def run(q, k, v, r, o, d, bs):
        return ta.triton_bias_attention(q, k, v, r, o, d, bs, factor_precision=factor_precision)

    return run


def ours_without_bias(q, k, v, r, o, d, bs):
    """The same kernels (bf16x3 layout) with the bias dots switched off: separates the cost of
    the bias from the Triton-vs-cuDNN gap."""
    keys = ta.key_factors(o, d, split=True)
    return ta._GeoBiasFlashAttention.apply(q, k, v, r, bs, keys, q.shape[-1]**-0.5, 'off')


def widen_autotune_lists():
    """--wide: more candidates per kernel (slower first call; some may spill)."""
    cfg = ta._cfg
    ta.widen_configs({
        'fwd': [cfg(64, 32, 4, 3), cfg(128, 128, 8, 2),
                cfg(64, 128, 4, 3), cfg(128, 64, 4, 2)],
        'dkdv': [cfg(64, 64, 4, 2), cfg(32, 64, 4, 2),
                 cfg(64, 128, 8, 2), cfg(32, 32, 4, 3)],
        'dq': [cfg(64, 64, 4, 2), cfg(128, 64, 8, 2),
               cfg(64, 32, 4, 2), cfg(32, 64, 4, 3)]
    })


def dense_sdpa_path(q, k, v, r, o, d, bs):
    """The `sdpa` path: dense bias in q's dtype as attn_mask (the mem-efficient kernel runs)."""
    mask = (-bs.view(1, -1, 1, 1) * reference_dist2(r, o, d, dtype=torch.float32)[:, None]).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def run_with_grads(fn, q, k, v, r, o, d, bs, grad_out):
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v, r, bs)]
    out = fn(leaves[0], leaves[1], leaves[2], leaves[3], o, d, leaves[4])
    grads = torch.autograd.grad(out, leaves, grad_out)
    return out.detach(), grads


def sdpa_backend(name):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backend = {
        'flash': SDPBackend.FLASH_ATTENTION,
        'cudnn': SDPBackend.CUDNN_ATTENTION,
        'efficient': SDPBackend.EFFICIENT_ATTENTION
    }[name]
    return lambda: sdpa_kernel(backend)


def time_case(fwd, inputs, grad_out, args, context=None):
    """{'fwd_ms', 'fwd_bwd_ms', 'peak_fwd_bwd_mib'} for fwd(*leaves) -> out; None if it fails."""
    leaves = [t.detach().clone().requires_grad_(True) if i in args.grad_idx else t
              for i, t in enumerate(inputs)]  # o, d stay expanded views (batch stride 0)
    need = [t for t in leaves if t.requires_grad]

    def f():
        with torch.no_grad():
            fwd(*leaves)

    def fb():
        torch.autograd.grad(fwd(*leaves), need, grad_out, allow_unused=True)

    try:
        ctx = context() if context else None
        if ctx:
            ctx.__enter__()
        try:
            res = {
                'fwd_ms': median_ms(f, 'cuda', args.warmup, args.iters),
                'fwd_bwd_ms': median_ms(fb, 'cuda', args.warmup, args.iters),
                'peak_fwd_bwd_mib': peak_mib(fb, 'cuda')
            }
        finally:
            if ctx:
                ctx.__exit__(None, None, None)
    except RuntimeError as e:  # e.g. a backend that does not support the shape/dtype
        return {'error': str(e).splitlines()[0][:200]}
    return res


def profile_kernels(fn):
    """(kernel name, CUDA ms) of one call, largest first."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    rows = []
    for evt in prof.key_averages():
        t = getattr(evt, 'device_time_total', None)
        if t is None:
            t = getattr(evt, 'cuda_time_total', 0)
        if t > 0:
            rows.append((evt.key[:90], round(t / 1000.0, 4), evt.count))
    return sorted(rows, key=lambda x: -x[1])[:15]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='JSON output path')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--shapes', nargs='+', default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument('--no-tf32x3', action='store_true', help='skip the tf32x3-factor variant')
    parser.add_argument('--no-dense', action='store_true', help='skip the dense-mask SDPA error baseline')
    parser.add_argument('--fp32', action='store_true', help='also time fp32 at the first shape')
    parser.add_argument('--wide', action='store_true', help='autotune over a longer config list (> 3 min)')
    args = parser.parse_args()
    if args.wide:
        widen_autotune_lists()
    assert torch.cuda.is_available(), 'needs a CUDA device'
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t_start = time.time()
    report = {
        'device': torch.cuda.get_device_name(),
        'torch': torch.__version__,
        'triton': __import__('triton').__version__,
        'shapes': {},
        'accuracy': {}
    }
    variants = ['bf16x3'] + ([] if args.no_tf32x3 else ['tf32x3'])

    # 1. autotune at the training shape (first call of each variant)
    main_shape = args.shapes[0]
    B, H, Nq, Nk, D, bev, cam = SHAPES[main_shape]
    q, k, v, r, o, d, bs, gout = cmt_kernel_inputs(B, H, Nq, Nk, D, bev, cam, torch.bfloat16)
    report['autotune_s'] = {}
    tuned = {fp: ours(fp) for fp in variants}
    tuned['no_bias'] = ours_without_bias
    for name, fn in tuned.items():
        t0 = time.time()
        run_with_grads(fn, q, k, v, r, o, d, bs, gout)
        torch.cuda.synchronize()
        report['autotune_s'][name] = round(time.time() - t0, 1)
    report['autotune_winners'] = ta.autotune_winners()
    print(f'autotune (s): {report["autotune_s"]}')
    for name, cache in report['autotune_winners'].items():
        for key, cfg in cache.items():
            print(f'  {name:5s} key={key}: {cfg}')

    # 2. accuracy vs the dense fp32 reference
    cases = {f'triton_{fp}': ours(fp) for fp in variants}
    if not args.no_dense:
        cases['sdpa_dense_mask'] = dense_sdpa_path
    for name, fn in cases.items():
        out, grads = run_with_grads(fn, q, k, v, r, o, d, bs, gout)
        errs = reference_errors(q, k, v, r, o, d, bs, gout, out, grads)
        report['accuracy'][name] = errs
        print(f'{name:18s} rel. max error vs fp32: ' + ', '.join(f'{n} {e:.2e}' for n, e in errs.items()))
        del out, grads
        torch.cuda.empty_cache()

    # 3. timing
    args.grad_idx = {0, 1, 2, 3, 6}
    header = (f'{"shape":12s} {"case":18s} {"fwd ms":>8s} {"fwd+bwd ms":>10s} {"peak MiB":>9s} '
              f'{"x flash f+b":>11s} {"x best f+b":>10s}')
    lines = [header]
    for shape in args.shapes:
        B, H, Nq, Nk, D, bev, cam = SHAPES[shape]
        q, k, v, r, o, d, bs, gout = cmt_kernel_inputs(B, H, Nq, Nk, D, bev, cam, torch.bfloat16)
        inputs = (q, k, v, r, o, d, bs)
        rows = {}
        for fp in variants:
            rows[f'triton_{fp}'] = time_case(ours(fp), inputs, gout, args)
        rows['triton_no_bias'] = time_case(ours_without_bias, inputs, gout, args)
        sdpa = lambda q, k, v, *rest: F.scaled_dot_product_attention(q, k, v)  # noqa: E731
        rows['sdpa_nobias_default'] = time_case(sdpa, inputs, gout, args)
        for backend in ('flash', 'cudnn', 'efficient'):
            rows[f'sdpa_nobias_{backend}'] = time_case(sdpa, inputs, gout, args, sdpa_backend(backend))
        if args.fp32 and shape == main_shape:
            inputs32 = tuple(t.float() if i < 3 else t for i, t in enumerate(inputs))
            rows['triton_fp32'] = time_case(ours('auto'), inputs32, gout.float(), args)
            rows['sdpa_nobias_fp32'] = time_case(sdpa, inputs32, gout.float(), args)
        flash = rows['sdpa_nobias_flash'].get('fwd_bwd_ms')
        best = min(v_['fwd_bwd_ms'] for n, v_ in rows.items()
                   if n.startswith('sdpa') and 'fwd_bwd_ms' in v_ and 'fp32' not in n)
        for name, res in rows.items():
            if 'fwd_bwd_ms' in res:
                res['ratio_vs_flash'] = res['fwd_bwd_ms'] / flash if flash else None
                res['ratio_vs_best_sdpa'] = res['fwd_bwd_ms'] / best
                lines.append(f'{shape:12s} {name:18s} {res["fwd_ms"]:8.3f} {res["fwd_bwd_ms"]:10.3f} '
                             f'{res["peak_fwd_bwd_mib"]:9.1f} {res["ratio_vs_flash"] or float("nan"):11.2f} '
                             f'{res["ratio_vs_best_sdpa"]:10.2f}')
            else:
                lines.append(f'{shape:12s} {name:18s} {res["error"]}')
        report['shapes'][shape] = {'B': B, 'H': H, 'Nq': Nq, 'Nk': Nk, 'D': D, 'rows': rows}
        del q, k, v, inputs
        torch.cuda.empty_cache()
    print('\n'.join(lines))

    # 4. where the time goes
    B, H, Nq, Nk, D, bev, cam = SHAPES[main_shape]
    q, k, v, r, o, d, bs, gout = cmt_kernel_inputs(B, H, Nq, Nk, D, bev, cam, torch.bfloat16)
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v, r, bs)]

    def one():
        out = ta.triton_bias_attention(leaves[0], leaves[1], leaves[2], leaves[3], o, d, leaves[4])
        torch.autograd.grad(out, leaves, gout)

    report['profile_kernels'] = profile_kernels(one)
    print('kernels of one triton fwd+bwd (name, CUDA ms, calls):')
    for row in report['profile_kernels']:
        print('  ', row)
    report['total_s'] = round(time.time() - t_start, 1)
    report['table'] = lines
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'wrote {args.out} ({report["total_s"]} s)')


if __name__ == '__main__':
    main()
