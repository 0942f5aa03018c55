"""Host time of the triton path's Python on a CPU (session 29, the workspace's AMD EPYC): the launches stubbed out,
TRITON_INTERPRET=1 so that the path accepts CPU tensors; best of 5 means of 4000 calls. Run at HEAD before the change
(path 16.4 us) and after it (11.6 us); kept as it ran, lint fixed.
    TRITON_INTERPRET=1 PYTHONPATH=. python docs/benchmarks/lean_checks_s29/probes/host_path_cpu.py
"""
import time

import torch

from projects.mmdet3d_plugin.attention.paths import triton as tp

mod = tp.load_triton_module(True)
mod._launch = lambda name, grid, tensors, scalars, consts, stream=None: None
B, H, Nq, Nk, D = 2, 8, 900, 22384, 32
q = torch.randn(B, Nq, H, D, dtype=torch.bfloat16).transpose(1, 2)
k = torch.randn(B, Nk, H, D, dtype=torch.bfloat16).transpose(1, 2)
v = k.clone()
r = torch.randn(B, Nq, 3)
o = torch.randn(1, Nk, 3).expand(B, Nk, 3)
d = torch.randn(1, Nk, 3).expand(B, Nk, 3)
s = torch.rand(H)


def best_mean_us(f, n=20000):
    for _ in range(200):
        f()
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n // 5):
            f()
        best = min(best, (time.perf_counter() - t0) / (n // 5) * 1e6)
    return best


keys = mod.key_factors(o, d, o, d, True, 10.0, centred=True)
with torch.no_grad():
    print('path', best_mean_us(lambda: tp.triton_path_attention(q, k, v, r, o, d, s, 10.0)))
    print('attention_with_keys', best_mean_us(lambda: mod.attention_with_keys(q, k, v, r, s, keys, 0.17)))
    print('_forward', best_mean_us(lambda: mod._forward(q, k, v, r, s, keys, 0.17, 'tf32x3', False)))
