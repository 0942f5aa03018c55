"""Host pieces of the triton path at the voxel0100 inference shape (bf16, inference mode), session 30's code
(forward launch plans): medians of 300 calls, each after a device synchronisation
(as benchmark_attention.py times a call).
    python docs/benchmarks/forward_plans_s30/probes/host_pieces_s30.py   # on a GPU, from the repository root
"""
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F

sys.path.insert(0, '.')
from projects.mmdet3d_plugin.attention.paths import triton as tp
from projects.mmdet3d_plugin.attention.paths import triton_launch_cache as tlc
from projects.mmdet3d_plugin.attention.testing import sync
from tools.benchmarks import benchmark_attention as ba

mod = tp.load_triton_module(True)
dev = torch.device('cuda')
args = types.SimpleNamespace(seed=0, heads=8, head_dim=32, length_scale=10.0, bias_scale=1.0)


def cold(f, n=300):
    ts = []
    for _ in range(n):
        sync(dev)
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e6)
    sync(dev)
    return statistics.median(ts)


case = ba.make_case('voxel0100', 900, torch.bfloat16, dev, args)
q, k, v, r, s = ba.leaves(case, False)
o, d = case['o'], case['d']
B, H, Nq, D = q.shape
Nk = k.shape[2]
with torch.inference_mode():
    tp.triton_path_attention(q, k, v, r, o, d, s, 10.0)
    keys = mod.key_factors(o, d, o, d, True, 10.0, centred=True)
    rf, sf = r.float(), s.float()
    mod._forward(q, k, v, rf, sf, keys, 0.17, 'tf32x3', False)
    plan_key = mod._plan_key(q, k, v, rf, sf, keys, 0.17, 'tf32x3', False)
    plan = mod._FWD_PLANS[plan_key]
    n_splits = plan.n_splits
    out = torch.empty((B, H, Nq, D), dtype=q.dtype, device=dev)
    part = mod._f32_rows(n_splits * B * H, Nq, D, False, dev)
    fwd_args = ((q, k, v, rf, keys.centre, sf, keys.psi, out, out, part), plan.fwd_scalars, plan.fwd_consts)
    grid = plan.fwd_grid
    entry_key = [key for key in mod.COMPILED._entries if key[0] == 'fwd']
    print('splits', n_splits, 'fwd cache entries', len(entry_key))
    real_launch = mod.COMPILED.launch

    class NoRun:  # the cached launch's Python, its launcher call replaced by a no-op

        def __enter__(self):
            self.saved = {}
            for key, e in mod.COMPILED._entries.items():
                compiled, tail, meta, direct = e
                if direct is not None:
                    self.saved[key] = e
                    mod.COMPILED._entries[key] = (compiled, tail, meta, (lambda *a: None, direct[1], direct[2]))

        def __exit__(self, *exc):
            mod.COMPILED._entries.update(self.saved)

    rows = [
        ('whole path', lambda: tp.triton_path_attention(q, k, v, r, o, d, s, 10.0)),
        ('_checked_inputs', lambda: tp._checked_inputs(q, k, v, r, o, d, s)),
        ('key_factors + r/bs float', lambda:
         (mod.key_factors(o, d, o, d, True, 10.0, centred=True), r.float(), s.float())),
        ('attention_with_keys', lambda: mod.attention_with_keys(q, k, v, rf, sf, keys, 0.17)),
        ('_forward', lambda: mod._forward(q, k, v, rf, sf, keys, 0.17, 'tf32x3', False)),
        ('empty out + part', lambda: (torch.empty(
            (B, H, Nq, D), dtype=q.dtype, device=dev), mod._f32_rows(n_splits * B * H, Nq, D, False, dev))),
        ('_plan_key', lambda: mod._plan_key(q, k, v, rf, sf, keys, 0.17, 'tf32x3', False)),
        ('_plan_key + lookup', lambda: mod._FWD_PLANS.get(mod._plan_key(q, k, v, rf, sf, keys, 0.17, 'tf32x3', False))),
        ('_launch fwd (runs, plan key)', lambda: mod._launch('fwd', grid, *fwd_args, key=plan_key)),
        ('_launch fwd (runs, no key)', lambda: mod._launch('fwd', grid, *fwd_args)),
        ('sdpa nobias', lambda: F.scaled_dot_product_attention(q, k, v)),
        ('torch.cuda.current_device', torch.cuda.current_device),
    ]
    for name, f in rows:
        print(f'{name:30s} {cold(f):7.1f} us', flush=True)
    with NoRun():
        t_launch = cold(lambda: mod._launch("fwd", grid, *fwd_args, key=plan_key))
        print(f'{"_launch fwd (no launcher)":30s} {t_launch:7.1f} us')
        print(f'{"_forward (no launcher)":30s} '
              f'{cold(lambda: mod._forward(q, k, v, rf, sf, keys, 0.17, "tf32x3", False)):7.1f} us')
    print('hooks passed to the launcher:', tlc._quiet_launch_hooks())
