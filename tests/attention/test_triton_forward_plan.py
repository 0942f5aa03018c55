"""The triton forward's launch plans (``triton_kernels._forward``): arguments computed once per input signature.

A kept plan must hand each launch exactly what a plan computed afresh for that call would: inputs that differ in
one stride, shape, dtype, key-factor layout or setting must never share a plan. CPU: the launches are recorded
instead of run (``_launch`` replaced), so this needs triton importable but no GPU. The GPU test runs the planned
launches on permuted memory layouts against fp64.
"""
import random

import pytest
import torch

from projects.mmdet3d_plugin.attention.testing import make_kernel_inputs, reference_attention


def _ta():
    pytest.importorskip('triton')
    import importlib
    return importlib.import_module('projects.mmdet3d_plugin.attention.paths.triton_kernels')


def _variants(ta, g):
    """name -> forward arguments (q, k, v, r, bias_scale, keys, sm_scale, fact_prec, save); each differs from
    'base' in one thing a launch reads."""
    B, H, D = 2, 2, 16
    Nq, Nk = int(torch.randint(5, 40, (), generator=g)), int(torch.randint(50, 90, (), generator=g))

    def qkv(n, dtype=torch.float32, layout='bhnd'):
        if layout == 'bnhd':  # (B, H, n, D) view of (B, n, H, D) memory: other strides, same shape
            return torch.randn(B, n, H, D, generator=g).to(dtype).transpose(1, 2)
        return torch.randn(B, H, n, D, generator=g).to(dtype)

    def keys(bp=B, split=False, inv_len=0.1, centre_b=1):
        fw = 2 * ta.KERNEL_RANK if split else ta.KERNEL_RANK
        psi = torch.randn(bp, Nk, fw, generator=g).to(torch.bfloat16 if split else torch.float32)
        return ta.KeyFactors(torch.randn(centre_b, 1, 3, generator=g), psi, inv_len)

    q, k, v = qkv(Nq), qkv(Nk), qkv(Nk)
    r, bs = torch.randn(B, Nq, 3, generator=g), torch.rand(H, generator=g)
    base = dict(q=q, k=k, v=v, r=r, bias_scale=bs, keys=keys(), sm_scale=0.25, fact_prec='tf32x3', save=False)
    changes = {
        'base': {},
        'q strides': dict(q=qkv(Nq, layout='bnhd')),
        'k strides': dict(k=qkv(Nk, layout='bnhd')),
        'v strides': dict(v=qkv(Nk, layout='bnhd')),
        'r strides': dict(r=torch.randn(B, 3, Nq, generator=g).transpose(1, 2)),
        'r batch shared': dict(r=torch.randn(1, Nq, 3, generator=g).expand(B, Nq, 3)),
        'Nq': dict(q=qkv(Nq + 1), r=torch.randn(B, Nq + 1, 3, generator=g)),
        'Nq, split keys': dict(q=qkv(Nq + 50), r=torch.randn(B, Nq + 50, 3, generator=g)),
        'bf16': dict(q=qkv(Nq, torch.bfloat16), k=qkv(Nk, torch.bfloat16), v=qkv(Nk, torch.bfloat16)),
        'split factors': dict(keys=keys(split=True)),
        'shared key lines': dict(keys=keys(bp=1)),
        'centre per batch': dict(keys=keys(centre_b=B)),
        'length scale': dict(keys=keys(inv_len=0.05)),
        'sm_scale': dict(sm_scale=0.5),
        'factor precision': dict(fact_prec='bf16x3'),
        'save': dict(save=True),
    }
    return {name: {**base, **change} for name, change in changes.items()}


def _layout(t):
    return tuple(t.shape), t.dtype, t.stride()


def test_forward_plans_never_go_stale(monkeypatch):
    """Every call's launches (grid, tensor layouts, scalars, constexprs) equal those of a plan made afresh for it,
    in random order over inputs that each differ in one thing; one plan is kept per variant and reused."""
    ta = _ta()
    seed = random.randrange(10**6)
    g = torch.Generator().manual_seed(seed)
    launches = []

    def record(name, grid, tensors, scalars, consts, stream=None, key=None):
        grid = grid(dict(BLOCK_M=8, BLOCK_N=16)) if callable(grid) else grid
        launches.append((name, grid, [_layout(t) for t in tensors], scalars, dict(consts)))

    monkeypatch.setattr(ta, '_launch', record)
    # splits the keys for the larger query counts, so the split launch (its merge in the kernel) is planned too
    monkeypatch.setattr(ta, 'kv_splits', lambda B, H, Nq, Nk, dev: (3, -(-Nk // 3)) if Nq > 45 else (1, Nk))
    monkeypatch.setattr(ta, '_FWD_PLANS', {})
    variants = _variants(ta, g)

    def launched(args):
        launches.clear()
        ta._forward(**args)
        return list(launches)

    fresh = {}
    for name, args in variants.items():
        ta._FWD_PLANS.clear()
        fresh[name] = launched(args)
    assert all(len(fresh[n]) == 1 for n in variants)  # one launch, with key splits too
    split = [fresh[n][0][4]['KV_SPLIT'] for n in variants]
    assert any(split) and not all(split)
    ta._FWD_PLANS.clear()
    order = list(variants) * 3
    random.Random(seed).shuffle(order)
    for name in order:
        assert launched(variants[name]) == fresh[name], (seed, name)
    assert len(ta._FWD_PLANS) == len(variants), seed


def test_forward_plans_are_not_kept_under_forced_settings(monkeypatch):
    """A forced key-split count or tile config changes the launch without changing the inputs: no plan is kept,
    and the forced value reaches the launch."""
    ta = _ta()
    launches = []
    monkeypatch.setattr(ta, '_launch', lambda name, grid, tensors, scalars, consts, **kw: launches.append(scalars))
    monkeypatch.setattr(ta, '_FWD_PLANS', {})
    args = _variants(ta, torch.Generator().manual_seed(random.randrange(10**6)))['base']
    Nk = args['k'].shape[2]
    ta._forward(**args)
    assert len(ta._FWD_PLANS) == 1
    ta._FWD_PLANS.clear()
    import triton
    with ta.forced_kv_splits(2):
        with ta.forced_config('fwd', triton.Config(dict(BLOCK_M=16, BLOCK_N=16))):  # key splits of 16-key tiles
            ta._forward(**args)
        assert not ta._FWD_PLANS and len(launches) == 2  # one launch a forward, key splits merged in it
        assert launches[1][-5] == Nk and launches[1][-4] == -(-Nk // 32) * 16  # (..., Nk, keys per split, 3 scales)
        ta._forward(**args)  # the largest BLOCK_N among the configs is the granule: fewer, longer splits
    assert not ta._FWD_PLANS
    ta._forward(**args)
    assert len(ta._FWD_PLANS) == 1 and launches[-1] == launches[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_gpu_planned_forwards_follow_memory_layouts():
    """One shape in three memory layouts, called in turn without a gradient (each layout gets its own plan and
    compiled launch): every output matches fp64."""
    ta = _ta()
    seed = random.randrange(10**6)
    q, k, v, r, o, d, bs, _ = make_kernel_inputs(
        1, 4, 500, 6000, 32, torch.bfloat16, 'shared', device='cuda', seed=seed)
    ref = reference_attention(q, k, v, r, o, d, bs)

    def bnhd(t):  # same values and shape, (B, N, H, D) memory
        return t.transpose(1, 2).contiguous().transpose(1, 2)

    layouts = {'contiguous': (q, k, v), 'bnhd': (bnhd(q), bnhd(k), bnhd(v)), 'q bnhd': (bnhd(q), k, v)}
    with torch.inference_mode():
        for _ in range(2):
            for name, (q_, k_, v_) in layouts.items():
                out = ta.triton_bias_attention(q_, k_, v_, r, o, d, bs)
                err = float((out.double() - ref).abs().max() / ref.abs().max())
                assert err < 3e-2, (seed, name, err)
