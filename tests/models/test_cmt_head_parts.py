"""Coordinate encodings, camera geometry, query denoising and per-layer prediction heads of the CMT head."""
import math

import numpy as np
import pytest
import torch

import projects.mmdet3d_plugin  # noqa: F401  (registers the modules)
from projects.mmdet3d_plugin.attention.geometry import camera_key_lines, point_line_dist2
from projects.mmdet3d_plugin.models.dense_heads.query_denoising import build_dn_queries, dn_attn_mask
from projects.mmdet3d_plugin.models.dense_heads.separate_task_head import CmtSeparateTaskHead
from projects.mmdet3d_plugin.models.layers.cmt_position_encoding import (depth_bins, lidar2img_from_metas, lift_pixels,
                                                                         pixel_centres, pos2embed, project_points)
from projects.mmdet3d_plugin.models.synthetic_inputs import camera_rig


def test_pos2embed_matches_formula():
    pos = torch.rand(7, 2, dtype=torch.float64)
    f = 8
    out = pos2embed(pos.float(), f).double()
    ref = np.zeros((7, 2 * f))
    for n in range(7):
        for half, coord in ((0, pos[n, 1]), (1, pos[n, 0])):  # (y, x) order
            for i in range(f):
                div = 2 * (i // 2) / f + 1
                a = float(coord) * 2 * math.pi / div
                ref[n, half * f + i] = math.sin(a) if i % 2 == 0 else math.cos(a)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_lifted_ray_points_lie_on_camera_key_lines():
    img_hw, feat_hw = (64, 160), (4, 10)
    l2i = torch.as_tensor(camera_rig(3, img_hw), dtype=torch.float32)[None]  # (1, 3, 4, 4)
    uv = pixel_centres(feat_hw, img_hw).view(1, 1, -1, 2).expand(1, 3, -1, -1)
    depths = depth_bins(5, 54.0)
    assert depths.tolist() == pytest.approx([1 + i * 53 / 5 for i in range(5)])
    pts = lift_pixels(uv, depths, torch.inverse(l2i))  # (1, 3, 40, 5, 3)
    o, d = camera_key_lines(l2i.double(), feat_hw, img_hw)  # (1, 120, 3)
    for k in range(5):
        r = pts[:, :, :, k].reshape(1, -1, 3).double()
        dist2 = point_line_dist2(r, o, d)  # (1, 120, 120): diagonal = own ray
        assert dist2.diagonal(dim1=1, dim2=2).abs().max() < 1e-6
    # projecting the lifted points returns the pixel centres at the chosen depths
    back, depth = project_points(pts[:, 1, :, 2], l2i)
    torch.testing.assert_close(back[:, 1], uv[:, 1], atol=1e-3, rtol=0)
    torch.testing.assert_close(depth[:, 1], torch.full_like(depth[:, 1], float(depths[2])), atol=1e-4, rtol=0)


def test_lidar2img_from_metas():
    rig = camera_rig(2, (64, 160))
    K = np.array([[100.0, 0, 80], [0, 100, 32], [0, 0, 1]])
    ext = [np.eye(4), np.eye(4)]
    ext[1][:3, 3] = [1, 2, 3]
    out = lidar2img_from_metas([dict(lidar2img=list(rig)), dict(cam2img=[K, K], lidar2cam=ext)])
    torch.testing.assert_close(out[0], torch.as_tensor(rig, dtype=torch.float32))
    expected = np.eye(4)
    expected[:3, :3] = K
    torch.testing.assert_close(out[1, 1], torch.as_tensor(expected @ ext[1], dtype=torch.float32))
    with pytest.raises(KeyError, match='lidar2img'):
        lidar2img_from_metas([dict(img_shape=(1, 1))])
    with pytest.raises(ValueError, match=r"metainfo\['cam2img'\]\[0\]"):
        lidar2img_from_metas([dict(cam2img=[np.eye(2)], lidar2cam=[np.eye(4)])])


def test_dn_attn_mask_rule():
    pad, nq, groups = 6, 4, 3
    mask = dn_attn_mask(pad, nq, groups)
    size = pad // groups
    for i in range(pad + nq):
        for j in range(pad + nq):
            if i >= pad:  # matching query: sees only matching queries
                blocked = j < pad
            elif j >= pad:  # DN query sees matching queries
                blocked = False
            else:  # DN query sees its own group only
                blocked = i // size != j // size
            assert bool(mask[i, j]) == blocked, (i, j)


def test_build_dn_queries():
    torch.manual_seed(0)
    pc = torch.tensor([-50.0, -50.0, -5.0, 50.0, 50.0, 3.0])
    boxes = [
        torch.tensor([[10.0, -5.0, 0.0, 4.0, 2.0, 1.6, 0.0, 0, 0], [-20, 30, -1, 1.0, 1.0, 2.0, 1.0, 0, 0]]),
        torch.zeros(0, 9),
        torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0, 0]])
    ]
    labels = [torch.tensor([3, 7]), torch.zeros(0, dtype=torch.long), torch.tensor([1])]
    dn = build_dn_queries(boxes, labels, num_query=15, pc_range=pc, num_classes=10, split=0.75)
    assert dn.groups == 7 and dn.pad_size == 14  # min(10, 15 // 2) groups of 2 slots
    assert dn.valid.sum(1).tolist() == [14, 0, 7]
    assert dn.attn_mask.shape == (29, 29)
    for b, (box, lab) in enumerate(zip(boxes, labels)):
        for g in range(dn.groups):
            for j in range(box.shape[0]):
                s = g * 2 + j
                ref_m = dn.ref_points[b, s] * (pc[3:] - pc[:3]) + pc[:3]
                noise = (ref_m - box[j, :3]) / (box[j, 3:6] / 2)  # U(-1, 1) per axis
                assert noise.abs().max() <= 1 + 1e-4
                expect = 10 if noise.norm() > 0.75 else int(lab[j])
                assert int(dn.labels[b, s]) == expect
                torch.testing.assert_close(dn.boxes[b, s], box[j])
    assert build_dn_queries([torch.zeros(0, 9)] * 2, [torch.zeros(0, dtype=torch.long)] * 2, 15, pc, 10) is None


def test_separate_task_head_layers_are_independent():
    torch.manual_seed(0)
    head = CmtSeparateTaskHead(
        16, dict(center=(2, 2), cls_logits=(3, 2)), groups=3, head_conv=8, final_kernel=1, init_mode='kaiming_prior')
    head.init_weights()
    assert torch.allclose(head.branches['cls_logits'][-1].bias, torch.tensor(-2.19))
    x = torch.randn(3, 2, 5, 16)
    out = head(x)
    assert out['center'].shape == (3, 2, 5, 2) and out['cls_logits'].shape == (3, 2, 5, 3)
    x2 = x.clone()
    x2[0] += torch.randn_like(x2[0])
    out2 = head(x2)
    assert not torch.allclose(out['center'][0], out2['center'][0])
    torch.testing.assert_close(out['center'][1:], out2['center'][1:])
    # a layer's output equals an independent per-layer computation with that group's weights
    conv0, norm, _, conv1 = head.branches['center']
    w0, w1 = conv0.weight.view(3, 8, 16), conv1.weight.view(3, 2, 8)
    for layer in range(3):
        h = x[layer] @ w0[layer].T  # (B, Q, 8)
        h = torch.nn.functional.layer_norm(
            h, (8, ), norm.weight.view(3, 8)[layer], norm.bias.view(3, 8)[layer], eps=norm.eps)
        y = h.relu() @ w1[layer].T + conv1.bias.view(3, 2)[layer]
        torch.testing.assert_close(out['center'][layer], y, atol=1e-5, rtol=1e-5)


def test_task_head_init_modes():
    """'torch_default' (CMT's effective init: its task heads sit in an nn.ModuleList that mmcv's init_weights never
    enters) leaves the construction-time init; 'kaiming_prior' is mmcv's Kaiming(layer='Conv1d') + class prior
    bias, the init CMT's SeparateTaskHead.init_weights defines."""
    heads = dict(center=(2, 2), cls_logits=(10, 2))
    torch.manual_seed(1)
    head = CmtSeparateTaskHead(256, heads, groups=6, head_conv=64)
    assert head.init_mode == 'torch_default'
    before = {k: v.clone() for k, v in head.state_dict().items()}
    head.init_weights()
    assert all(torch.equal(before[k], v) for k, v in head.state_dict().items())
    cls_bias = head.branches['cls_logits'][-1].bias
    assert cls_bias.abs().max() <= 1 / math.sqrt(64)  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))

    head = CmtSeparateTaskHead(256, heads, groups=6, head_conv=64, init_mode='kaiming_prior', init_bias=-2.19)
    head.init_weights()
    for name, branch in head.branches.items():
        convs = [m for m in branch if isinstance(m, torch.nn.Conv1d)]
        first = convs[0].weight  # (6*64, 256, 1): fan_out = 384 * 1
        assert abs(first.std().item() / math.sqrt(2.0 / first.shape[0]) - 1) < 0.02
        assert abs(first.mean().item()) < 3 * math.sqrt(2.0 / first.shape[0]) / math.sqrt(first.numel())
        want_bias = -2.19 if name == 'cls_logits' else 0.0
        torch.testing.assert_close(convs[-1].bias, torch.full_like(convs[-1].bias, want_bias))
    with pytest.raises(ValueError, match='init_mode'):
        CmtSeparateTaskHead(16, heads, groups=2, init_mode='kaiming')


def test_group_layer_norm_eps_is_cmts():
    """CMT's GroupLayerNorm1d uses eps 1e-6: on features of variance ~1e-6 eps decides the output."""
    from projects.mmdet3d_plugin.models.dense_heads.separate_task_head import GroupLayerNorm1d
    norm = GroupLayerNorm1d(6, groups=2).double()
    assert norm.eps == 1e-6
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 5, dtype=torch.float64) * 1e-3
    g = x.view(2, 2, 3, 5)
    mu = g.sum(2, keepdim=True) / 3
    var = ((g - mu)**2).sum(2, keepdim=True) / 3

    def ref(eps):
        y = ((g - mu) / torch.sqrt(var + eps)).view(2, 6, 5)
        return y * norm.weight[:, None] + norm.bias[:, None]

    torch.testing.assert_close(norm(x), ref(1e-6))
    assert (norm(x) - ref(1e-5)).abs().max() > 1e-2  # the test tells the two eps apart


def test_transformer_init_zeroes_linear_biases_as_cmt():
    """CMT's CmtTransformer.init_weights: mmcv xavier_init(m, distribution='uniform') on every module whose weight
    is a matrix: xavier-uniform weight, zero bias (FFN Linears included)."""
    from cmt_test_utils import DEMO, build_model
    transformer = build_model(DEMO['fusion'], seed=3).pts_bbox_head.transformer
    matrices = [
        m for m in transformer.modules() if isinstance(getattr(m, 'weight', None), torch.Tensor) and m.weight.dim() > 1
    ]
    ffn_linears = [
        m for layer in transformer.decoder.layers for m in layer.ffn.modules() if isinstance(m, torch.nn.Linear)
    ]
    assert ffn_linears and all(any(m is n for n in matrices) for m in ffn_linears)
    for m in matrices:
        fan_out, fan_in = m.weight.shape[:2]
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.9 * bound
        if m.bias is not None:
            assert not m.bias.any(), m
    for layer in transformer.decoder.layers:  # fused q/k/v projections: xavier-uniform over (3C, C), zero bias
        for attn in (layer.self_attn.attn, layer.cross_attn.attn):
            w = attn.in_proj_weight
            assert w.abs().max() <= math.sqrt(6.0 / sum(w.shape)) and not attn.in_proj_bias.any()


def _self_attention_fp64(attn, x, pos, blocked):
    """Reference of mmcv MultiheadAttention's self-attention (eval: no dropout), written out in fp64: q = k = x + pos,
    v = x, per-head softmax(q k^T / sqrt(D) with blocked pairs at -inf) v, output projection, identity residual."""
    w, b = attn.attn.in_proj_weight.double(), attn.attn.in_proj_bias.double()
    B, N, C = x.shape
    H = attn.num_heads
    D = C // H

    def heads(t, i):
        return (t @ w[i * C:(i + 1) * C].T + b[i * C:(i + 1) * C]).view(B, N, H, D).transpose(1, 2)

    q, k, v = heads(x + pos, 0), heads(x + pos, 1), heads(x, 2)
    logits = (q @ k.transpose(-1, -2) / math.sqrt(D)).masked_fill(blocked, float('-inf'))
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
    out = out @ attn.attn.out_proj.weight.double().T + attn.attn.out_proj.bias.double()
    return x + out


def test_decoder_self_attention_is_mmcvs_function_through_sdpa():
    """CmtDecoderLayer's self-attention (mmcv MultiheadAttention's parameters, run with need_weights=False) equals
    the attention written out in fp64 under the DN mask, outputs and gradients; in training its attention dropout is
    applied (output differs from eval, reproducible under one seed)."""
    from cmt_test_utils import DEMO, build_model
    layer = build_model(
        DEMO['fusion'], seed=int(torch.randint(0, 1000, ()))).pts_bbox_head.transformer.decoder.layers[0]
    layer = layer.double().eval()
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())))
    C, pad, nq, groups = layer.embed_dims, 6, 9, 3
    x = torch.randn(2, pad + nq, C, generator=gen, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(2, pad + nq, C, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = dn_attn_mask(pad, nq, groups)
    out = layer._self_attention(x, pos, mask)
    ref = _self_attention_fp64(layer.self_attn, x, pos, mask)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad(out, (x, pos, layer.self_attn.attn.in_proj_weight), g)
    ref_grads = torch.autograd.grad(ref, (x, pos, layer.self_attn.attn.in_proj_weight), g)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-10)
    layer.train()
    layer.self_attn.proj_drop.eval()  # leave only the attention dropout (nn.MultiheadAttention's own) active
    layer.self_attn.dropout_layer.eval()
    assert layer.self_attn.attn.dropout > 0
    torch.manual_seed(5)
    train_a = layer._self_attention(x, pos, mask)
    torch.manual_seed(5)
    train_b = layer._self_attention(x, pos, mask)
    assert torch.equal(train_a, train_b) and not torch.allclose(train_a, out)
