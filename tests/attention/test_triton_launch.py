"""The triton path's lean launch: key factors built once per set of key lines, compiled kernels launched without
Triton's per-call binding, no saved tensors when no gradient is wanted.

CPU: the key-factor cache through the path under the Triton interpreter (a subprocess: TRITON_INTERPRET=1 must be
set before triton is imported). GPU (skipped on CPU): the compiled-launch cache against an fp64 reference.
"""
import types

import pytest
import torch

from projects.mmdet3d_plugin.attention.testing import (GRAD_NAMES, kernel_relative_errors, make_kernel_inputs,
                                                       reference_attention)
from tests.attention.interpreted import run_interpreted

# Three decoder-layer-like calls on one (o, d) pair, an in-place change of o, then equal values in new tensors:
# counts the key-factor builds (launches of the key factor kernel) and compares each output with fp64 math.
KEY_CACHE_SCRIPT = r'''
import json, torch
from projects.mmdet3d_plugin.attention import clear_key_factor_cache, triton_path_attention
from projects.mmdet3d_plugin.attention.paths import triton_kernels as ta
from projects.mmdet3d_plugin.attention.testing import reference_attention
builds = []
launch = ta._launch
ta._launch = lambda name, *a, **kw: (builds.append(name) if name == 'key_factors' else None, launch(name, *a, **kw))[1]
g = torch.Generator().manual_seed(int(SEED))
B, H, Nq, Nk, D, L = 2, 2, 19, 37, 32, 10.0
q, k, v = (torch.randn(B, H, n, D, generator=g) for n in (Nq, Nk, Nk))
r = (torch.rand(B, Nq, 3, generator=g) * 2 - 1) * 30 + 5
o = (torch.rand(B, Nk, 3, generator=g) * 2 - 1) * 30 + 5
d = torch.nn.functional.normalize(torch.randn(B, Nk, 3, generator=g), dim=-1)
s = torch.rand(H, generator=g) + 0.2
res = {'builds': [], 'err': []}
def call(o_, d_):
    out = triton_path_attention(q, k, v, r, o_, d_, s, L)
    ref = reference_attention(q, k, v, r, o_, d_, s, length_scale=L)
    res['err'].append(float((out.double() - ref).abs().max() / ref.abs().max()))
    res['builds'].append(len(builds))
for _ in range(3):
    call(o, d)
o.add_(torch.randn(B, Nk, 3, generator=g) * 3)  # in place: the version counter changes
call(o, d)
call(o.clone(), d.clone())  # same values, new tensors
clear_key_factor_cache()
call(o, d)
print('RESULT' + json.dumps(res))
'''


def test_key_factors_built_once_per_key_lines():
    pytest.importorskip('triton')
    seed = int(torch.randint(0, 10**6, ()).item())
    res = run_interpreted(KEY_CACHE_SCRIPT.replace('SEED', str(seed)))
    # one build for the three calls, one after the in-place change, one for new tensors, one after clearing
    assert res['builds'] == [1, 1, 1, 2, 3, 4], res
    assert max(res['err']) < 1e-4, (seed, res)


class _FakeKernel:
    """Stands in for a triton.JITFunction with signature (X, Y, n, scale, BLOCK: constexpr, MODE: constexpr):
    ``self[grid](*args, **kw)`` records a launch through Triton and returns the compiled kernel, whose
    ``[grid](*args)`` records a direct launch."""
    arg_names = ['X', 'Y', 'n', 'scale', 'BLOCK', 'MODE']

    def __init__(self):
        self.through_triton, self.direct = [], []
        self.compiled = self

    def __getitem__(self, grid):
        return lambda *args, **kw: self._launch(grid, args, kw)

    def _launch(self, grid, args, kw):
        if kw:  # Triton's call: constexprs and options by keyword
            self.through_triton.append((grid, args, kw))
            return self.compiled
        self.direct.append((grid, args))


class _OnDevice:
    """A tensor's stand-in that reports another device index (``get_device``)."""

    def __init__(self, t, device: int):
        self.t, self.dtype, self.device = t, t.dtype, device

    def data_ptr(self):
        return self.t.data_ptr()

    def get_device(self):
        return self.device


def test_launch_cache_keys_on_what_triton_specializes(monkeypatch):
    """Launches through Triton once per key, then the compiled kernel with the arguments in signature order (the
    constexprs appended); another int value, tensor alignment, dtype, device or constexpr is a new key."""
    pytest.importorskip('triton')
    from projects.mmdet3d_plugin.attention.paths.triton_launch_cache import CompiledLaunchCache
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    kernel, cache = _FakeKernel(), CompiledLaunchCache()
    x, y = torch.zeros(64), torch.zeros(64)
    assert x.data_ptr() % 16 == 0 and x[1:].data_ptr() % 16 == 4 and x[4:].data_ptr() % 16 == 0

    def launch(tensors, n, mode='a'):
        cache.launch('k', kernel, (3, 1), tensors, (n, 0.5), dict(BLOCK=16, MODE=mode), {'num_warps': 4})

    launch((x, y), 7)
    launch((x, y), 7)
    assert kernel.through_triton == [((3, 1), (x, y, 7, 0.5), dict(BLOCK=16, MODE='a', num_warps=4))]
    assert kernel.direct == [((3, 1, 1), (x, y, 7, 0.5, 16, 'a'))]  # grids padded to 3 dims for the launcher
    launch((x, y), 8)  # another int value
    launch((x[1:], y), 7)  # data pointer 4 bytes past a 16-byte boundary
    launch((x.double(), y), 7)  # dtype
    launch((x, y), 7, mode='b')  # constexpr
    launch((_OnDevice(x, 0), y), 7)  # device (a CPU tensor never shares a key with a CUDA one)
    assert len(kernel.through_triton) == 6 and len(kernel.direct) == 1
    launch((x[4:], y), 7)  # another tensor, aligned like x: the same compiled kernel
    assert (cache.misses, cache.hits) == (6, 2) and kernel.direct[-1][1][0] is not x


def test_launch_cache_with_a_callers_key_reads_only_alignment(monkeypatch):
    """With a caller's key (a launch plan's) the entry is that key, the kernel's name and the pointers' alignment:
    a hit launches with the call's own arguments; a misaligned pointer, another key or another name is a miss."""
    pytest.importorskip('triton')
    from projects.mmdet3d_plugin.attention.paths.triton_launch_cache import CompiledLaunchCache
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    kernel, cache = _FakeKernel(), CompiledLaunchCache()
    x, y = torch.zeros(64), torch.zeros(64)

    def launch(tensors, n, key, name='k'):
        cache.launch(name, kernel, (2, ), tensors, (n, 0.5), dict(BLOCK=16, MODE='a'), {}, key=key)

    launch((x, y), 7, ('plan', 1))
    launch((x[4:], y), 9, ('plan', 1))  # same alignment: a hit, with this call's tensors and scalars
    assert len(kernel.through_triton) == 1 and len(kernel.direct) == 1
    grid, args = kernel.direct[0]
    assert grid == (2, 1, 1) and args[0].data_ptr() == x[4:].data_ptr() and args[2:] == (9, 0.5, 16, 'a')
    launch((x[1:], y), 7, ('plan', 1))  # 4 bytes past a 16-byte boundary
    launch((x, y), 7, ('plan', 2))
    launch((x, y), 7, ('plan', 1), name='other')
    assert (cache.misses, cache.hits, len(cache)) == (4, 1, 4)


def test_launch_cache_skips_kernels_of_another_signature(monkeypatch):
    """A kernel whose parameters after the runtime arguments are not exactly the constexprs given is launched
    through Triton every time (never from a wrongly ordered cache entry)."""
    pytest.importorskip('triton')
    from projects.mmdet3d_plugin.attention.paths.triton_launch_cache import CompiledLaunchCache
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    kernel, cache = _FakeKernel(), CompiledLaunchCache()
    x = torch.zeros(8)
    for _ in range(3):  # 'MODE' missing from the constexprs: the signature does not match
        cache.launch('k', kernel, (1, ), (x, x), (1, 0.5), dict(BLOCK=16), {})
    assert len(kernel.through_triton) == 3 and not kernel.direct and len(cache) == 0


class _FakeCompiled:
    """A compiled kernel as Triton >= 3.4 returns it: ``run`` (its launcher), ``function`` (the CUDA function
    handle) and ``packed_metadata``; ``[grid](*args)`` is Triton's runner."""
    function, packed_metadata = 1234, ('warps', 4)

    def __init__(self):
        self.launcher_calls, self.runner_calls = [], []

    def run(self, *args):
        self.launcher_calls.append(args)

    def __getitem__(self, grid):
        return lambda *args: self.runner_calls.append((grid, args))


def test_cached_launch_calls_the_launcher_directly_unless_hooked(monkeypatch):
    """Without launch hooks a cached launch calls the compiled kernel's launcher itself, with the arguments
    Triton's runner passes (grid, current stream, function, metadata, no hook record, None for the empty hook
    chains, the kernel's arguments, tensors as their data pointers); with a hook installed it goes through the
    runner, which builds the hooks' record, with the tensors themselves."""
    pytest.importorskip('triton')
    from triton import knobs

    from projects.mmdet3d_plugin.attention.paths import triton_launch_cache as tlc
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    monkeypatch.setattr(torch._C, '_cuda_getCurrentRawStream', lambda device: 777 + device, raising=False)
    kernel, cache = _FakeKernel(), tlc.CompiledLaunchCache()
    kernel.compiled = compiled = _FakeCompiled()
    x = torch.zeros(8)

    def launch():
        cache.launch('k', kernel, (2, ), (x, x), (5, 0.5), dict(BLOCK=16, MODE='a'), {})

    launch()  # through Triton
    launch()
    enter = knobs.runtime.launch_enter_hook
    ptr = x.data_ptr()  # tensors go to the launcher as their device addresses
    assert compiled.launcher_calls == [(2, 1, 1, 777, 1234, ('warps', 4), None, None, None, ptr, ptr, 5, 0.5, 16, 'a')]
    assert not compiled.runner_calls
    # a given stream: its handle goes to the launcher instead of the current stream's
    cache.launch('k', kernel, (2, ), (x, x), (5, 0.5), dict(BLOCK=16, MODE='a'), {},
                 types.SimpleNamespace(cuda_stream=99))
    assert compiled.launcher_calls.pop()[3] == 99 and not compiled.runner_calls
    hook = [].append
    if hasattr(enter, 'add'):  # a hook chain (Triton >= 3.5)
        enter.add(hook)
    else:
        monkeypatch.setattr(knobs.runtime, 'launch_enter_hook', hook)
    try:
        launch()
    finally:
        if hasattr(enter, 'remove'):
            enter.remove(hook)
    assert compiled.runner_calls == [((2, 1, 1), (x, x, 5, 0.5, 16, 'a'))] and len(compiled.launcher_calls) == 1


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def _ta():
    import importlib
    return importlib.import_module('projects.mmdet3d_plugin.attention.paths.triton_kernels')


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float32])
def test_gpu_compiled_launches_match_triton_launches(dtype):
    """Calls after the first launch the cached compiled kernels (no new cache entries); their outputs and
    gradients equal those of launches through Triton bit for bit, and all agree with fp64."""
    ta = _ta()
    seed = int(torch.randint(0, 10**6, ()).item())
    inputs = make_kernel_inputs(2, 4, 300, 1001, 32, dtype, 'per_batch', device='cuda', seed=seed)
    q, k, v, r, o, d, bs, grad_out = inputs

    def run():
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v, r, bs)]
        out = ta.triton_bias_attention(*leaves[:4], o, d, leaves[4])
        return [out.detach()] + list(torch.autograd.grad(out, leaves, grad_out.to(dtype)))

    ta.COMPILED.clear()
    first = run()  # through Triton: compiles/autotunes, fills the cache
    entries, hits, misses = len(ta.COMPILED), ta.COMPILED.hits, ta.COMPILED.misses
    again = run()  # forward, delta, dq, dk/dv, dr: five launches, all from the cache
    assert (len(ta.COMPILED), ta.COMPILED.misses, ta.COMPILED.hits - hits) == (entries, misses, 5)
    for name, a, b in zip(('out', *GRAD_NAMES), first, again):
        assert torch.equal(a, b), name
    errs = kernel_relative_errors(*inputs, ta.triton_bias_attention)
    rtol, atol = {torch.float32: (1e-4, 1e-5), torch.bfloat16: (3e-2, 1e-3)}[dtype]
    bad = {n: e for n, (e, ref) in errs.items() if not e <= rtol * ref + atol}
    assert not bad, (seed, errs)


@pytest.mark.gpu
@gpu
def test_gpu_misaligned_inputs_get_their_own_kernel():
    """Triton specializes on 16-byte alignment: a q whose data pointer is not aligned must not reuse the kernel
    compiled for an aligned q. The unaligned call adds cache entries and still matches fp64."""
    ta = _ta()
    seed = int(torch.randint(0, 10**6, ()).item())
    q, k, v, r, o, d, bs, _ = make_kernel_inputs(1, 2, 70, 130, 32, torch.bfloat16, 'shared', device='cuda', seed=seed)
    with torch.no_grad():
        ta.triton_bias_attention(q, k, v, r, o, d, bs)
        entries = len(ta.COMPILED)
        buf = torch.empty(q.numel() + 1, dtype=q.dtype, device='cuda')
        q_odd = buf[1:].view_as(q).copy_(q)  # data pointer 2 bytes past a 16-byte boundary
        assert q_odd.data_ptr() % 16 != 0
        out = ta.triton_bias_attention(q_odd, k, v, r, o, d, bs)
    assert len(ta.COMPILED) > entries
    ref = reference_attention(q, k, v, r, o, d, bs)
    assert float((out.double() - ref).abs().max() / ref.abs().max()) < 3e-2


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize('splits', [1, 3])
def test_gpu_inference_forward_equals_training_forward(splits):
    """Without a gradient the forward skips the saved tensors (no A, fp32 output or LSE writes): same output,
    bit for bit, as with one, in one pass and with the keys split (one forced tile config for both: the
    autotuner may pick different tiles for the two variants)."""
    ta = _ta()
    seed = int(torch.randint(0, 10**6, ()).item())
    q, k, v, r, o, d, bs, _ = make_kernel_inputs(2, 4, 150, 3001, 32, torch.bfloat16, 'far', device='cuda', seed=seed)
    with ta.forced_kv_splits(splits), ta.forced_config('fwd', ta.kernel_configs('fwd')[0]):
        with torch.inference_mode():
            out_infer = ta.triton_bias_attention(q, k, v, r, o, d, bs)
        out_train = ta.triton_bias_attention(q.requires_grad_(True), k, v, r, o, d, bs)
    assert out_train.requires_grad and not out_infer.requires_grad
    assert torch.equal(out_infer, out_train.detach())
