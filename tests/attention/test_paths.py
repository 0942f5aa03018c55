"""sdpa / svd / exact paths vs the fp64 dense-softmax reference.

Fresh random inputs per case; outputs and gradients to q, k, v, bias_scale
and r; ragged sizes (Nq = 1, Nk = 1, Nq = 37, Nk = 1001), far-off and wide
coordinates (hundreds of metres), fp32 and bf16.
"""
import math
import zlib

import pytest
import torch

from projects.mmdet3d_plugin.attention import (VALID_BIAS_MODES, bias_attention, clear_key_factor_cache,
                                               exact_bias_attention, resolve_mode, sdpa_bias_attention,
                                               svd_bias_attention)
from projects.mmdet3d_plugin.attention.paths import exact as exact_path
from projects.mmdet3d_plugin.attention.paths import triton as triton_path
from projects.mmdet3d_plugin.attention.testing import reference_attention_fp64

# (Nq, Nk): ragged and degenerate sizes.
SHAPES = [(1, 50), (37, 1), (37, 1001), (12, 64)]
# name: (centre of the scene in metres, half extent in metres, length scale)
COORDS = {
    'near': ((0.0, 0.0, 0.0), 54.0, 10.0),
    'far_offset': ((400.0, -300.0, 20.0), 50.0, 10.0),
    'wide': ((0.0, 0.0, 0.0), 300.0, 60.0),
}
GRADS = ('q', 'k', 'v', 'bias_scale', 'r')
# Relative Frobenius error bounds (see _rel_err), about 3-10x the largest
# errors measured over seeds. In bf16 the factor paths' gradients to
# bias_scale and r are limited by SDPA returning dq in bf16: the q-side
# factor columns' gradients cancel when contracted with phi(r) (terms of
# size |r - centre|^2 / L^2 against the attended distances), so they are
# ~10x noisier than the dense path's at these small sizes; their exactness
# is checked in fp32, their bf16 level in test_bf16_gradient_precision.
TOL = {
    torch.float32: {
        'sdpa': dict(out=3e-5, q=3e-5, k=3e-5, v=3e-5, bias_scale=1e-4, r=3e-5),
        'exact': dict(out=3e-5, q=1e-4, k=1e-4, v=3e-5, bias_scale=5e-4, r=3e-4),
        'svd': dict(out=1e-4, q=3e-4, k=3e-4, v=1e-4, bias_scale=2e-3, r=2e-3),
    },
    torch.bfloat16: {
        'sdpa': dict(out=8e-3, q=1.2e-2, k=1.2e-2, v=1.2e-2, bias_scale=0.15, r=4e-2),
        'exact': dict(out=8e-3, q=1.5e-2, k=1.5e-2, v=1.2e-2, bias_scale=0.8, r=6e-2),
        'svd': dict(out=8e-3, q=1.5e-2, k=1.5e-2, v=1.2e-2, bias_scale=0.8, r=6e-2),
    },
}
# With Nk = 1 the softmax is 1: out = v and the gradients to q, k,
# bias_scale and r are 0; their max |error| must stay below this.
ZERO_GRAD_ATOL = {torch.float32: 1e-3, torch.bfloat16: 2e-2}


def _seed(*parts):
    return zlib.crc32(repr(parts).encode()) % 100000


def make_inputs(nq, nk, dtype, coords, seed, b=2, h=2, head_dim=32, shared_lines=False):
    gen = torch.Generator().manual_seed(seed)
    centre, half, length_scale = COORDS[coords]
    centre = torch.tensor(centre)

    def rand(*shape, dt=torch.float32):
        return torch.randn(*shape, generator=gen).to(dt)

    q, k, v = (rand(b, h, n, head_dim, dt=dtype).requires_grad_() for n in (nq, nk, nk))
    r = (centre + (torch.rand(b, nq, 3, generator=gen) * 2 - 1) * torch.tensor([half, half, 4.0])).requires_grad_()
    lb = 1 if shared_lines else b
    o = centre + (torch.rand(lb, nk, 3, generator=gen) * 2 - 1) * \
        torch.tensor([half, half, 2.0])
    d = torch.nn.functional.normalize(rand(lb, nk, 3), dim=-1)
    if shared_lines:
        o, d = o[0], d[0]
    bias_scale = (0.3 + torch.rand(h, generator=gen)).requires_grad_()
    return dict(q=q, k=k, v=v, r=r, o=o, d=d, bias_scale=bias_scale, length_scale=length_scale)


def _grads(out, inp, grad_out):
    names = [n for n in GRADS if inp[n].requires_grad]
    loss = (out.double() * grad_out).sum()
    return dict(zip(names, torch.autograd.grad(loss, [inp[n] for n in names])))


def _rel_err(got, ref, floor):
    """||got - ref|| / max(||ref||, floor * sqrt(numel)); ref is fp64."""
    got, ref = got.detach().double(), ref.detach()
    den = max(float(ref.norm()), floor * math.sqrt(ref.numel()))
    return float((got - ref).norm()) / den


def _run(mode, inp, **kwargs):
    args = [inp[n] for n in ('q', 'k', 'v', 'r', 'o', 'd', 'bias_scale')]
    return bias_attention(*args, inp['length_scale'], mode=mode, **kwargs)


def _reference(inp, **kwargs):
    args = [inp[n] for n in ('q', 'k', 'v', 'r', 'o', 'd', 'bias_scale')]
    return reference_attention_fp64(*args, inp['length_scale'], **kwargs)


def _errors(mode, inp, seed, **kwargs):
    """Relative errors of out and of every gradient; max |error| for
    gradients whose reference is identically 0 (Nk = 1)."""
    ref = _reference(inp)
    grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64)
    ref_grads = _grads(ref, inp, grad_out)
    out = _run(mode, inp, **kwargs)
    assert out.shape == ref.shape and out.dtype == inp['q'].dtype
    got_grads = _grads(out, inp, grad_out)
    errs = {'out': _rel_err(out, ref, 1e-3)}
    zero = {}
    for n in ref_grads:
        if inp['k'].shape[2] == 1 and n != 'v':
            zero[n] = float((got_grads[n] - ref_grads[n]).abs().max())
        else:
            errs[n] = _rel_err(got_grads[n], ref_grads[n], 1e-3)
    return errs, zero, ref


@pytest.mark.parametrize('coords', list(COORDS))
@pytest.mark.parametrize('nq,nk', SHAPES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('mode', ['sdpa', 'svd', 'exact'])
def test_path_matches_fp64_reference(mode, dtype, nq, nk, coords):
    seed = _seed(mode, str(dtype), nq, nk, coords)
    inp = make_inputs(nq, nk, dtype, coords, seed, shared_lines=(nq + nk) % 2 == 0)
    errs, zero, ref = _errors(mode, inp, seed)
    tol = TOL[dtype][mode]
    bad = {n: e for n, e in errs.items() if not e <= tol[n]}
    assert not bad, f'errors {errs} exceed {tol}'
    bad = {n: e for n, e in zero.items() if not e <= ZERO_GRAD_ATOL[dtype]}
    assert not bad, f'gradients that should be 0: max |error| {zero}'
    if nk > 1:
        # The bias must matter at these tolerances (else the test is moot).
        no_bias = reference_attention_fp64(inp['q'], inp['k'], inp['v'], None, None, None, None)
        assert _rel_err(no_bias, ref, 1e-3) > 20 * tol['out']


@pytest.mark.parametrize('mode', ['exact', 'svd'])
def test_bf16_gradient_precision(mode):
    """At a moderate size the bf16 factor paths' gradients stay usable."""
    inp = make_inputs(256, 512, torch.bfloat16, 'near', 91, b=1, h=4)
    errs = _errors(mode, inp, 91)[0]
    dense = _errors('sdpa', make_inputs(256, 512, torch.bfloat16, 'near', 91, b=1, h=4), 91)[0]
    assert errs['out'] <= 1.3 * dense['out'], (errs, dense)
    for n in ('q', 'k', 'v'):
        assert errs[n] <= 1.5 * dense[n], (n, errs, dense)
    assert errs['r'] <= 2e-2 and errs['bias_scale'] <= 0.3, errs


def test_bf16_factor_paths_as_accurate_as_dense():
    """Hi/lo split factors keep the bf16 output error at the dense path's."""
    errs = {}
    for mode in ('sdpa', 'exact', 'svd'):
        inp = make_inputs(64, 300, torch.bfloat16, 'far_offset', 11)
        inp['bias_scale'] = torch.full((2, ), 2.0, requires_grad=True)
        errs[mode] = _errors(mode, inp, 11)[0]['out']
    plain = make_inputs(64, 300, torch.bfloat16, 'far_offset', 11)
    plain['bias_scale'] = torch.full((2, ), 2.0, requires_grad=True)
    args = [plain[n] for n in ('q', 'k', 'v', 'r', 'o', 'd', 'bias_scale')]
    ref = _reference(plain)
    uncomp = exact_bias_attention(*args, plain['length_scale'], compensated=False)
    uncomp_err = _rel_err(uncomp, ref, 1e-3)
    assert errs['exact'] <= 1.5 * errs['sdpa'] + 1e-4, errs
    assert errs['svd'] <= 1.5 * errs['sdpa'] + 1e-4, errs
    # Plain bf16 factors lose to cancellation (why the split exists).
    assert uncomp_err > 3 * errs['exact'], (uncomp_err, errs)


@pytest.mark.parametrize('pad_v', [True, False])
def test_exact_value_padding_and_fp64(pad_v):
    inp = make_inputs(9, 40, torch.float64, 'near', 5, head_dim=16)
    inp['v'] = torch.randn(2, 2, 40, 8, dtype=torch.float64, requires_grad=True)  # d_v != d_qk
    for n in ('r', 'o', 'd'):  # fp64 geometry -> fp64 factors
        inp[n] = inp[n].detach().double()
    inp['d'] = torch.nn.functional.normalize(inp['d'], dim=-1)
    args = [inp[n] for n in ('q', 'k', 'v', 'r', 'o', 'd', 'bias_scale')]
    out = exact_bias_attention(*args, inp['length_scale'], pad_v=pad_v)
    ref = _reference(inp)
    assert out.shape == (2, 2, 9, 8)
    assert torch.allclose(out, ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize('mode', ['sdpa', 'svd'])
def test_dense_bias(mode):
    inp = make_inputs(20, 70, torch.float32, 'near', 21)
    gen = torch.Generator().manual_seed(22)
    # A rank-3 dense bias per (b, h), as a caller might pass.
    left = torch.randn(2, 2, 20, 3, generator=gen)
    right = torch.randn(2, 2, 70, 3, generator=gen)
    dense = (left @ right.transpose(-1, -2)).requires_grad_()
    args = [inp[n] for n in ('q', 'k', 'v')]
    g = torch.randn(2, 2, 20, 32, generator=gen, dtype=torch.float64)

    # Dense bias alone (no geometry).
    out = bias_attention(*args, None, None, None, None, mode=mode, dense_bias=dense)
    ref = reference_attention_fp64(*args, None, None, None, None, extra_bias=dense)
    assert _rel_err(out, ref, 1e-3) < 2e-4
    # Dense bias plus the geometric bias.
    full = [inp[n] for n in ('q', 'k', 'v', 'r', 'o', 'd', 'bias_scale')]
    # rank <= 10 + 3: the svd path needs a rank of at least 13 here.
    out = bias_attention(*full, inp['length_scale'], mode=mode, dense_bias=dense, svd_rank=16)
    ref = reference_attention_fp64(*full, inp['length_scale'], extra_bias=dense)
    assert _rel_err(out, ref, 1e-3) < 2e-4
    names = ['q', 'bias_scale', 'r']
    got = torch.autograd.grad((out.double() * g).sum(), [inp[n] for n in names] + [dense])
    want = torch.autograd.grad((ref * g).sum(), [inp[n] for n in names] + [dense])
    for n, a, b in zip(names, got, want):
        assert _rel_err(a, b, 1e-3) < 2e-3, n
    if mode == 'sdpa':  # svd gives the gradient projected on its subspace
        assert _rel_err(got[-1], want[-1], 1e-3) < 1e-4


def test_svd_reports_error_and_warns_when_rank_too_low(caplog):
    from mmengine.logging import MMLogger
    MMLogger.get_instance('attn_test')
    inp = make_inputs(30, 80, torch.float32, 'near', 31)
    args = [inp[n] for n in ('q', 'k', 'v', 'r', 'o', 'd', 'bias_scale')]
    with pytest.warns(UserWarning, match='factorisation error'):
        out = svd_bias_attention(*args, inp['length_scale'], rank=2, check_error=True)
    ref = _reference(inp)
    assert _rel_err(out, ref, 1e-3) > 1e-3  # rank 2 < 10: approximate
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # rank 10: exact, no warning
        out = svd_bias_attention(*args, inp['length_scale'], rank=10, check_error=True)
    assert _rel_err(out, ref, 1e-3) < 5e-4


@pytest.mark.parametrize('mode', ['sdpa', 'svd', 'exact'])
def test_attn_mask(mode):
    inp = make_inputs(10, 60, torch.float32, 'near', 41)
    gen = torch.Generator().manual_seed(42)
    keep = torch.rand(2, 1, 10, 60, generator=gen) > 0.3
    keep[..., 0] = True  # no fully masked row
    out = _run(mode, inp, attn_mask=keep)
    extra = torch.zeros(keep.shape, dtype=torch.float64).masked_fill(~keep, float('-inf'))
    ref = _reference(inp, extra_bias=extra)
    assert _rel_err(out, ref, 1e-3) < 5e-4


def test_key_factor_cache_reuse_and_invalidation(monkeypatch):
    clear_key_factor_cache()
    inp = make_inputs(8, 30, torch.float32, 'near', 51)
    calls = []
    real = exact_path.key_factors
    monkeypatch.setattr(exact_path, 'key_factors', lambda *a: calls.append(1) or real(*a))
    args = [inp[n] for n in ('q', 'k', 'v', 'r', 'o', 'd', 'bias_scale')]
    out1 = exact_bias_attention(*args, inp['length_scale'])
    out2 = exact_bias_attention(*args, inp['length_scale'])
    assert len(calls) == 1 and torch.equal(out1, out2)
    with torch.no_grad():
        inp['o'].add_(3.0)  # in place: the cached factors are stale
    out3 = exact_bias_attention(*args, inp['length_scale'])
    assert len(calls) == 2
    assert _rel_err(out3, _reference(inp), 1e-3) < 1e-4


def test_auto_and_triton_modes(monkeypatch):
    inp = make_inputs(5, 20, torch.float32, 'near', 61)
    q = inp['q']
    assert resolve_mode('auto', q) == 'exact'  # CPU: never triton
    assert resolve_mode('auto', q, dense_bias=torch.zeros(1, 1, 5, 20)) == \
        'sdpa'
    auto = _run('auto', inp)
    exact = _run('exact', inp)
    assert torch.equal(auto, exact)
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    with pytest.raises(RuntimeError, match='not available'):
        _run('triton', inp)
    # Without the kernel module: a clear error, and auto still works.
    monkeypatch.setattr(triton_path, 'KERNEL_MODULE', 'projects.mmdet3d_plugin.attention._no_such_kernel')
    with pytest.raises(RuntimeError, match='triton_kernels.py'):
        _run('triton', inp)
    assert torch.equal(_run('auto', inp), exact)


def test_bad_inputs():
    inp = make_inputs(5, 20, torch.float32, 'near', 71)
    args = [inp[n] for n in ('q', 'k', 'v', 'r', 'o', 'd', 'bias_scale')]
    with pytest.raises(ValueError, match="one of .*'sdpa', 'svd', 'exact'"):
        bias_attention(*args, mode='dense')
    dense = torch.zeros(2, 2, 5, 20)
    for mode in ('exact', 'triton'):
        with pytest.raises(ValueError, match="use bias_mode='sdpa' or 'svd'"):
            bias_attention(*args[:3], None, None, None, None, mode=mode, dense_bias=dense)
    bad_r = torch.zeros(2, 6, 3)
    with pytest.raises(ValueError, match=r'\(2, 5, 3\).*\(2, 6, 3\)'):
        bias_attention(*args[:3], bad_r, *args[4:], mode='exact')
    with pytest.raises(ValueError, match=r'o \(2, 20, 3\), d \(2, 20, 2\)'):
        bias_attention(*args[:5], args[5][..., :2], args[6], mode='sdpa')
    with pytest.raises(ValueError, match=r'\(2, 19, 3\)'):
        bias_attention(*args[:4], torch.zeros(2, 19, 3), torch.zeros(2, 19, 3), args[6], mode='svd')
    with pytest.raises(ValueError, match=r'bias_scale .*\(2,\).*\(3,\)'):
        bias_attention(*args[:6], torch.ones(3), mode='exact')
    with pytest.raises(TypeError, match='dtype'):
        bias_attention(args[0], args[1].double(), *args[2:], mode='sdpa')
    with pytest.raises(ValueError, match='meta'):
        bias_attention(*args[:3], args[3].to('meta'), *args[4:], mode='exact')
    with pytest.raises(ValueError, match=r'dense_bias .*\(2, 2, 5, 20\)'):
        bias_attention(*args, mode='sdpa', dense_bias=torch.zeros(2, 3, 5, 20))
    with pytest.raises(ValueError, match=r'q .*\(2, 5, 32\)'):
        bias_attention(args[0][0], *args[1:], mode='sdpa')
    assert set(VALID_BIAS_MODES) == {'sdpa', 'svd', 'exact', 'triton', 'auto'}


def test_sdpa_path_needs_some_bias():
    inp = make_inputs(5, 20, torch.float32, 'near', 81)
    with pytest.raises(ValueError, match='dense_bias'):
        sdpa_bias_attention(inp['q'], inp['k'], inp['v'], None, None, None, None)
