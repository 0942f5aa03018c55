"""GeometricBiasAttention: registry, weights, equivalence to plain attention,
each bias path vs an fp64 reference built from the module's own weights."""
import pytest
import torch
from torch import nn

import projects.mmdet3d_plugin  # noqa: F401  (registers the module)
from mmdet3d.registry import MODELS
from projects.mmdet3d_plugin.attention import GeometricBiasAttention, bev_key_lines
from projects.mmdet3d_plugin.attention.paths import svd as svd_path
from projects.mmdet3d_plugin.attention.testing import reference_attention_fp64

C, HEADS, NQ, NK, B = 64, 4, 11, 48, 2
PC_RANGE = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]


def _inputs(seed, lines_per_batch=False):
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(B, NQ, C, generator=gen)
    key = torch.randn(B, NK, C, generator=gen)
    value = torch.randn(B, NK, C, generator=gen)
    query_pos = torch.randn(B, NQ, C, generator=gen)
    key_pos = torch.randn(B, NK, C, generator=gen)
    ref_points = (torch.rand(B, NQ, 3, generator=gen) * 2 - 1) * torch.tensor([54.0, 54.0, 3.0])
    o, d = bev_key_lines(PC_RANGE, (6, 8))
    if lines_per_batch:  # shift the second sample's grid by 2 m
        o = torch.stack([o, o + torch.tensor([2.0, 0.0, 0.0])])
        d = d.expand(B, NK, 3)
    return dict(
        query=query,
        key=key,
        value=value,
        query_pos=query_pos,
        key_pos=key_pos,
        ref_points=ref_points,
        key_lines=(o, d))


def _build(**kwargs):
    cfg = dict(type='GeometricBiasAttention', embed_dims=C, num_heads=HEADS)
    cfg.update(kwargs)
    module = MODELS.build(cfg)
    with torch.no_grad():  # non-trivial projection biases
        module.attn.in_proj_bias.normal_()
        module.attn.out_proj.bias.normal_()
    return module


def _reference_module_output(module, inp):
    """identity + out_proj(softmax(q k^T/sqrt(D) - s dist2) v), fp64."""
    w = module.attn.in_proj_weight.double()
    bias = module.attn.in_proj_bias.double()
    hd = C // HEADS

    def heads(x, i):
        y = x.double() @ w[i * C:(i + 1) * C].T + bias[i * C:(i + 1) * C]
        return y.view(B, -1, HEADS, hd).transpose(1, 2)

    q = heads(inp['query'] + inp['query_pos'], 0)
    k = heads(inp['key'] + inp['key_pos'], 1)
    v = heads(inp['value'], 2)
    o, d = inp['key_lines']
    out = reference_attention_fp64(q, k, v, inp['ref_points'], o, d, module.bias_scale, module.length_scale)
    out = out.transpose(1, 2).reshape(B, NQ, C)
    out = out @ module.attn.out_proj.weight.double().T + \
        module.attn.out_proj.bias.double()
    return inp['query'].double() + out


def test_registry_weights_and_names():
    module = _build(bias_scale_init=[0.5, 1.0, 1.5, 2.0], length_scale=5.0)
    assert isinstance(module, GeometricBiasAttention)
    keys = set(module.state_dict())
    assert keys == {
        'bias_scale', 'attn.in_proj_weight', 'attn.in_proj_bias', 'attn.out_proj.weight', 'attn.out_proj.bias'
    }
    assert module.in_proj_weight is module.attn.in_proj_weight
    assert module.in_proj_weight.shape == (3 * C, C)
    assert module.in_proj_bias.shape == (3 * C, )
    assert isinstance(module.out_proj, nn.Linear)
    assert torch.equal(module.bias_scale.data, torch.tensor([0.5, 1.0, 1.5, 2.0]))
    assert _build(bias_scale_init=0.25).bias_scale.tolist() == [0.25] * 4
    plain = _build(use_bias=False)
    assert plain.bias_scale is None and 'bias_scale' not in plain.state_dict()


@pytest.mark.parametrize('masks', ['none', 'bool', 'float_per_head'])
def test_use_bias_false_equals_nn_multihead_attention(masks):
    module = _build(use_bias=False).eval()
    inp = _inputs(1)
    mha = nn.MultiheadAttention(C, HEADS, batch_first=True).eval()
    mha.load_state_dict(module.attn.state_dict())
    kwargs = {}
    if masks == 'float_per_head':
        gen = torch.Generator().manual_seed(2)
        kwargs = dict(attn_mask=torch.randn(B * HEADS, NQ, NK, generator=gen))
    elif masks == 'bool':
        gen = torch.Generator().manual_seed(2)
        attn_mask = torch.rand(NQ, NK, generator=gen) > 0.7  # True = block
        attn_mask[:, 0] = False
        pad = torch.zeros(B, NK, dtype=torch.bool)
        pad[1, -5:] = True
        kwargs = dict(attn_mask=attn_mask, key_padding_mask=pad)
    out = module(**inp, **kwargs)
    ref = mha(
        inp['query'] + inp['query_pos'], inp['key'] + inp['key_pos'], inp['value'], need_weights=False, **
        kwargs)[0] + inp['query']
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('lines_per_batch', [False, True])
@pytest.mark.parametrize('mode', ['sdpa', 'svd', 'exact', 'auto'])
def test_bias_paths_match_reference_with_gradients(mode, lines_per_batch):
    module = _build(bias_mode=mode, bias_scale_init=[0.5, 1.0, 2.0, 3.0])
    inp = _inputs(3, lines_per_batch)
    inp['ref_points'].requires_grad_()
    out = module(**inp)
    ref = _reference_module_output(module, inp)
    assert out.shape == (B, NQ, C)
    assert torch.allclose(out.double(), ref, atol=2e-5, rtol=1e-4)
    g = torch.randn(B, NQ, C, generator=torch.Generator().manual_seed(4))
    params = [module.bias_scale, module.attn.in_proj_weight, inp['ref_points']]
    got = torch.autograd.grad((out * g).sum(), params)
    want = torch.autograd.grad((ref * g.double()).sum(), params)
    for name, a, b in zip(['bias_scale', 'in_proj_weight', 'ref_points'], got, want):
        assert b.abs().max() > 1e-4, name  # the gradient really arrives
        err = (a.double() - b).norm() / b.norm()
        assert err < 2e-3, (name, float(err))


def test_batch_first_false_and_key_pos_default():
    module = _build(bias_mode='exact').eval()
    inp = _inputs(5)
    out = module(
        inp['query'],
        inp['key'],
        inp['value'],
        query_pos=inp['query_pos'],
        key_pos=inp['key_pos'],
        ref_points=inp['ref_points'],
        key_lines=inp['key_lines'])
    seq = _build(bias_mode='exact', batch_first=False).eval()
    seq.load_state_dict(module.state_dict())
    out_seq = seq(
        *(inp[n].transpose(0, 1) for n in ('query', 'key', 'value')),
        query_pos=inp['query_pos'].transpose(0, 1),
        key_pos=inp['key_pos'].transpose(0, 1),
        ref_points=inp['ref_points'],
        key_lines=inp['key_lines'])
    assert torch.allclose(out_seq.transpose(0, 1), out, atol=1e-6)
    # Self-attention style: key = query, key_pos defaults to query_pos.
    sa = module(
        inp['query'],
        query_pos=inp['query_pos'],
        ref_points=inp['ref_points'],
        key_lines=tuple(x[:NQ] for x in inp['key_lines']))
    sa_explicit = module(
        inp['query'],
        inp['query'],
        inp['query'],
        query_pos=inp['query_pos'],
        key_pos=inp['query_pos'],
        ref_points=inp['ref_points'],
        key_lines=tuple(x[:NQ] for x in inp['key_lines']))
    assert torch.allclose(sa, sa_explicit)


def test_autocast_bf16_stays_close_to_fp32():
    module = _build(bias_mode='exact').eval()
    inp = _inputs(6)
    ref = _reference_module_output(module, inp)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = module(**inp)
    err = (out.double() - ref).norm() / ref.norm()
    assert 1e-4 < err < 2e-2  # bf16 projections/attention, fp32 geometry


def test_svd_error_reported_once(monkeypatch):
    calls = []
    monkeypatch.setattr(svd_path, 'report_error', lambda err, rank: calls.append((err, rank)))
    module = _build(bias_mode='svd', svd_rank=10)
    inp = _inputs(7)
    module(**inp)
    module(**inp)
    assert len(calls) == 1 and calls[0][0] < 1e-4 and calls[0][1] == 10


def test_module_bad_input():
    with pytest.raises(ValueError, match="'sdpa', 'svd', 'exact', 'triton'"):
        _build(bias_mode='flash')
    with pytest.raises(ValueError, match='bias_scale_init'):
        _build(bias_scale_init=[1.0, 2.0])
    with pytest.raises(ValueError, match='divisible'):
        _build(num_heads=5)
    inp = _inputs(8)
    dense = torch.zeros(B, HEADS, NQ, NK)
    module = _build(bias_mode='exact')
    with pytest.raises(ValueError, match="use bias_mode='sdpa' or 'svd'"):
        module(inp['query'], inp['key'], inp['value'], dense_bias=dense)
    with pytest.raises(ValueError, match='needs ref_points'):
        module(inp['query'], inp['key'], inp['value'])
    with pytest.raises(ValueError, match='pair'):
        module(inp['query'], inp['key'], inp['value'], ref_points=inp['ref_points'], key_lines=inp['key_lines'][0])
    with pytest.raises(ValueError, match=r'key_padding_mask .*\(2, 48\)'):
        module(**inp, key_padding_mask=torch.zeros(B, NK + 1, dtype=torch.bool))
    # A dense bias alone is fine for sdpa (and auto picks sdpa).
    for mode in ('sdpa', 'auto'):
        out = _build(bias_mode=mode)(inp['query'], inp['key'], inp['value'], dense_bias=dense)
        assert out.shape == (B, NQ, C)


@pytest.mark.parametrize('mode', ['sdpa', 'exact'])
def test_attention_dropout_only_in_training(mode):
    module = _build(bias_mode=mode, attn_drop=0.5)
    inp = _inputs(9)
    torch.manual_seed(0)
    train_a = module(**inp)
    train_b = module(**inp)
    assert not torch.allclose(train_a, train_b)  # weights dropped at random
    module.eval()
    ref = _reference_module_output(module, inp)
    assert torch.allclose(module(**inp).double(), ref, atol=2e-5, rtol=1e-4)


def test_resolved_mode_is_the_path_that_ran_and_auto_resolves_once(monkeypatch):
    from projects.mmdet3d_plugin.attention import geometric_bias_attention as gba
    calls = []
    real = gba.resolve_mode
    monkeypatch.setattr(gba, 'resolve_mode', lambda mode, *a: calls.append(mode) or real(mode, *a))
    module = _build(bias_mode='auto').eval()
    assert module.resolved_mode is None
    inp = _inputs(3)
    out_auto = module(**inp)
    module(**inp)
    assert module.resolved_mode == 'exact' and calls == ['auto']  # CPU
    module.bias_mode = 'sdpa'  # a new mode is resolved again
    out_sdpa = module(**inp)
    assert module.resolved_mode == 'sdpa' and calls == ['auto', 'sdpa']
    assert torch.allclose(out_auto, out_sdpa, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="'sdpa', 'svd', 'exact'"):
        module.bias_mode = 'flash'
    plain = _build(use_bias=False)
    plain(**inp)
    assert plain.resolved_mode == 'none'
