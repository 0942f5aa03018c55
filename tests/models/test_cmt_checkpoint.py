"""CMT's released checkpoints: key conversion, sparse-conv weight layouts, and the cmt_compat forward switches.

The key lists of CMT's models come from ``tests/fixtures/cmt_keys/*.json`` (derived from CMT's module definitions by
``tests/fixtures/cmt_keys/make_cmt_key_fixture.py``, not from the converter).
"""
import json
import math
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cmt_test_utils import ROOT, load_cfg
from torch import nn

from mmdet3d.registry import MODELS
from projects.mmdet3d_plugin.attention import GeometricBiasAttention
from projects.mmdet3d_plugin.models.dense_heads.separate_task_head import CmtSeparateTaskHead
from projects.mmdet3d_plugin.models.layers.cmt_position_encoding import pixel_centres, pos2embed
from projects.mmdet3d_plugin.models.synthetic_inputs import camera_rig
from projects.mmdet3d_plugin.models.utils.cmt_checkpoint import convert_cmt_state_dict, rename_cmt_key
from projects.mmdet3d_plugin.models.utils.sparse_conv_layout import (SparseConvSpec, convert_kernel,
                                                                     convert_sparse_layout, detect_sparse_layout,
                                                                     layout_shape, model_sparse_layout,
                                                                     sparse_conv_specs)

FIXTURES = osp.join(ROOT, 'tests/fixtures/cmt_keys')
COMPAT = {
    'cmt_voxel0100_r50_fusion': 'projects/configs/cmt_compat/cmt_voxel0100_r50_800x320.py',
    'cmt_voxel0075_vov_fusion': 'projects/configs/cmt_compat/cmt_voxel0075_vov_1600x640.py',
}


def load_fixture(name):
    with open(osp.join(FIXTURES, f'{name}_keys.json')) as f:
        return json.load(f)


def random_cmt_state_dict(keys, gen):
    """Random tensors of the fixture's shapes (distinct from any initialisation)."""
    sd = OrderedDict()
    for key, shape in keys.items():
        if key.endswith('num_batches_tracked'):
            sd[key] = torch.randint(1, 10**6, (), generator=gen)
        else:
            sd[key] = torch.randn(shape, generator=gen)
    return sd


def build(path, **head):
    cfg = load_cfg(path)
    cfg.model.pts_bbox_head.update(head)
    return MODELS.build(cfg.model)


# ---------------------------------------------------------------- sparse-conv layouts
@pytest.mark.parametrize('kernel', [(3, 3, 3), (3, 1, 1), (2, 3, 4)])
def test_sparse_kernel_element_mapping(kernel):
    """A value placed at kernel offset (dz, dy, dx), in-channel i, out-channel o lands where each layout keeps it."""
    spec = SparseConvSpec(kernel, 5, 7)
    rng = np.random.default_rng()
    dz, dy, dx = (int(rng.integers(k)) for k in kernel)
    i, o = int(rng.integers(5)), int(rng.integers(7))
    w_mmcv = torch.zeros(layout_shape(spec, 'mmcv'))
    assert w_mmcv.shape == (*kernel, 5, 7)
    w_mmcv[dz, dy, dx, i, o] = 3.5
    w_sp = convert_kernel(w_mmcv, 'mmcv', 'spconv2')
    assert w_sp.shape == (7, *kernel, 5) == layout_shape(spec, 'spconv2')
    assert w_sp[o, dz, dy, dx, i] == 3.5 and w_sp.count_nonzero() == 1
    w_rskc = convert_kernel(w_mmcv, 'mmcv', 'spconv2_rskc')
    assert w_rskc.shape == (*kernel, 7, 5) and w_rskc[dz, dy, dx, o, i] == 3.5 and w_rskc.count_nonzero() == 1
    # round trips, both directions, on random kernels
    full = torch.randn(*kernel, 5, 7)
    assert torch.equal(convert_kernel(convert_kernel(full, 'mmcv', 'spconv2'), 'spconv2', 'mmcv'), full)
    sp = torch.randn(7, *kernel, 5)
    assert torch.equal(convert_kernel(convert_kernel(sp, 'spconv2', 'mmcv'), 'mmcv', 'spconv2'), sp)
    assert torch.equal(convert_kernel(w_rskc, 'spconv2_rskc', 'spconv2'), w_sp)


def _mmdet3d_spconv2_loader_module(shape):
    """A module with mmdet3d 1.4's spconv-2 ``_load_from_state_dict`` (what a spconv-2 SparseEncoder loads with)."""
    from mmdet3d.models.layers.spconv.overwrite_spconv.write_spconv2 import _load_from_state_dict

    class Spconv2Like(nn.Module):
        _version = 2

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(shape))

    Spconv2Like._load_from_state_dict = _load_from_state_dict
    return Spconv2Like()


def test_layouts_agree_with_mmdet3d_spconv2_loader():
    """mmdet3d's own loader permutes a kernel without version-2 metadata from mmcv's layout to spconv 2's, exactly
    as convert_kernel does; with the metadata our converter writes for 'spconv2' it loads the tensor as it is."""
    spec = SparseConvSpec((3, 1, 1), 4, 6)
    w_mmcv = torch.randn(layout_shape(spec, 'mmcv'))
    host = nn.Module()
    host.conv = _mmdet3d_spconv2_loader_module(layout_shape(spec, 'spconv2'))
    specs = {'conv.weight': spec}
    host.load_state_dict(OrderedDict([('conv.weight', w_mmcv)]))  # no metadata: mmdet3d permutes
    assert torch.equal(host.conv.weight.data, convert_kernel(w_mmcv, 'mmcv', 'spconv2'))

    converted, src = convert_sparse_layout(OrderedDict([('conv.weight', w_mmcv)]), specs, 'spconv2')
    assert src == 'mmcv' and converted._metadata['conv'] == {'version': 2}
    host.conv.weight.data.zero_()
    host.load_state_dict(converted)  # version 2: loaded unchanged
    assert torch.equal(host.conv.weight.data, converted['conv.weight'])
    back, src = convert_sparse_layout(converted, specs, 'mmcv')
    assert src == 'spconv2' and torch.equal(back['conv.weight'], w_mmcv) and 'version' not in back._metadata['conv']


def test_detect_sparse_layout():
    specs = {'a.weight': SparseConvSpec((3, 3, 3), 16, 16), 'b.weight': SparseConvSpec((3, 3, 3), 5, 16)}
    for layout in ('mmcv', 'spconv2', 'spconv2_rskc'):
        sd = {k: torch.zeros(layout_shape(s, layout)) for k, s in specs.items()}
        assert detect_sparse_layout(sd, specs) == layout
    only_square = {'a.weight': torch.zeros(3, 3, 3, 16, 16)}  # mmcv and RSKC shapes coincide
    with pytest.raises(ValueError, match='fit layouts'):
        detect_sparse_layout(only_square, specs)
    with pytest.raises(ValueError, match=r'b\.weight has shape \(1, 2\)'):
        detect_sparse_layout({'b.weight': torch.zeros(1, 2)}, specs)


def test_model_sparse_specs_on_the_installed_backend():
    from mmdet3d.models.layers.spconv import IS_SPCONV2_AVAILABLE
    model = build(COMPAT['cmt_voxel0100_r50_fusion'])
    specs = sparse_conv_specs(model)
    assert len(specs) == 21 and all(k.startswith('pts_middle_encoder.') for k in specs)
    assert specs['pts_middle_encoder.conv_input.0.weight'] == SparseConvSpec((3, 3, 3), 5, 16)
    assert specs['pts_middle_encoder.conv_out.0.weight'] == SparseConvSpec((3, 1, 1), 128, 128)
    assert model_sparse_layout(model) == ('spconv2' if IS_SPCONV2_AVAILABLE else 'mmcv')


# ---------------------------------------------------------------- per-layer task heads
def test_task_head_weights_map_to_grouped_branches():
    """CMT's task-head tensors, converted, give each decoder layer the output of a plain per-layer head built from
    that layer's slice of the CMT tensors (Conv1d -> LayerNorm -> ReLU -> Conv1d)."""
    keys = {k: v for k, v in load_fixture('cmt_voxel0100_r50_fusion')['keys'].items() if '.task_heads.' in k}
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    cmt = random_cmt_state_dict(keys, gen)
    L, C, hc = 6, 256, 64
    heads = dict(center=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2), cls_logits=(10, 2))
    ours = CmtSeparateTaskHead(C, heads, groups=L, head_conv=hc, final_kernel=1)
    prefix = 'pts_bbox_head.task_head.'
    ours.load_state_dict({rename_cmt_key(k)[len(prefix):]: v for k, v in cmt.items()}, strict=True)
    x = torch.randn(L, 2, 30, C, generator=gen)  # (layers, batch, queries, channels)
    with torch.no_grad():
        out = ours(x)
        for name, (n_out, _) in heads.items():
            p = f'pts_bbox_head.task_heads.0.{name}'
            w0, g, b, w3, b3 = (cmt[f'{p}.{s}'] for s in ('0.weight', '1.weight', '1.bias', '3.weight', '3.bias'))
            for layer in range(L):
                conv0 = nn.Conv1d(C, hc, 1, bias=False)
                conv0.weight.copy_(w0[layer * hc:(layer + 1) * hc])
                conv3 = nn.Conv1d(hc, n_out, 1)
                conv3.weight.copy_(w3[layer * n_out:(layer + 1) * n_out])
                conv3.bias.copy_(b3[layer * n_out:(layer + 1) * n_out])
                h = conv0(x[layer].transpose(1, 2)).transpose(1, 2)  # (B, Q, hc)
                h = F.layer_norm(h, (hc, ), g[layer * hc:(layer + 1) * hc], b[layer * hc:(layer + 1) * hc], 1e-6)
                ref = conv3(h.relu().transpose(1, 2)).transpose(1, 2)  # (B, Q, n_out)
                torch.testing.assert_close(out[name][layer], ref, atol=2e-4, rtol=1e-4)


# ---------------------------------------------------------------- whole models
def _check_loaded(model, cmt, converted, synthesised=()):
    """Every model tensor (but the synthesised ones) equals its CMT source tensor (renamed; sparse kernels through the
    layout change)."""
    specs = sparse_conv_specs(model)
    layout = model_sparse_layout(model)
    source = {rename_cmt_key(k): v for k, v in cmt.items()}
    state = model.state_dict()
    assert set(state) == set(converted)
    for key, value in state.items():
        if key in synthesised:
            continue
        expected = source[key]
        if key in specs:
            expected = convert_kernel(expected, 'mmcv', layout)
        assert torch.equal(value, expected), key


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(COMPAT))
def test_cmt_checkpoint_loads_strict(name, tmp_path):
    """Random CMT checkpoint (fixture keys and shapes) -> tools/model_converters/convert_cmt_checkpoint.py -> strict
    load into the cmt_compat model; every tensor of the model comes from the checkpoint."""
    from tools.model_converters.convert_cmt_checkpoint import main
    fixture = load_fixture(name)
    seed = int(torch.randint(0, 2**31, ()))
    cmt = random_cmt_state_dict(fixture['keys'], torch.Generator().manual_seed(seed))
    src, dst = tmp_path / 'cmt.pth', tmp_path / 'converted.pth'
    torch.save(dict(state_dict=OrderedDict(('module.' + k, v) for k, v in cmt.items()), meta=dict(epoch=20)), src)
    assert main([str(src), str(dst)]) == 0  # config chosen from the backbone keys
    ckpt = torch.load(dst, map_location='cpu', weights_only=False)
    assert ckpt['meta']['synthesised_keys'] == [] and ckpt['meta']['converted_for'] == COMPAT[name]
    model = build(COMPAT[name])
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys, seed
    _check_loaded(model, cmt, ckpt['state_dict'])


def test_conversion_for_the_bias_config_and_spconv2_checkpoints(tmp_path):
    """A checkpoint saved with spconv 2 kernels is detected and converted; a target config with the geometric
    bias on gets bias_scale = 0 (reported as synthesised), which leaves CMT's attention unchanged."""
    fixture = load_fixture('cmt_voxel0100_r50_fusion')
    cmt = random_cmt_state_dict(fixture['keys'], torch.Generator().manual_seed(int(torch.randint(0, 2**31, ()))))
    model = build('projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    specs = sparse_conv_specs(model)
    cmt_sp2 = OrderedDict((k, convert_kernel(v, 'mmcv', 'spconv2') if k in specs else v) for k, v in cmt.items())
    result = convert_cmt_state_dict(cmt_sp2, model)
    assert result.sparse_layout == ('spconv2', model_sparse_layout(model))
    assert sorted(result.synthesised) == [
        f'pts_bbox_head.transformer.decoder.layers.{i}.cross_attn.bias_scale' for i in range(6)
    ]
    model.load_state_dict(result.state_dict, strict=True)
    layers = model.pts_bbox_head.transformer.decoder.layers
    assert all(torch.equal(layer.cross_attn.bias_scale.detach(), torch.zeros(8)) for layer in layers)
    _check_loaded(model, cmt, result.state_dict, result.synthesised)
    # forcing the written layout to spconv 2 gives spconv-2 kernels tagged version 2
    forced = convert_cmt_state_dict(cmt, model, sparse_dst_layout='spconv2')
    key = 'pts_middle_encoder.conv_input.0.weight'
    assert forced.state_dict[key].shape == (16, 3, 3, 3, 5)
    assert forced.state_dict._metadata['pts_middle_encoder.conv_input.0']['version'] == 2
    # ... and tools/model_converters/convert_sparse_conv_layout.py moves such a (spconv-2) checkpoint back to the mmcv
    # backend
    from tools.model_converters.convert_sparse_conv_layout import main
    src, dst = tmp_path / 'spconv2.pth', tmp_path / 'mmcv.pth'
    torch.save(dict(state_dict=forced.state_dict, meta={}), src)
    cfg = osp.join(ROOT, 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    assert main([cfg, str(src), str(dst), '--to', 'mmcv']) == 0
    back = torch.load(dst, map_location='cpu', weights_only=False)['state_dict']
    # CMT's own (mmcv-layout) kernel again, whichever backend this machine's model uses (spconv 2 on GPU machines)
    assert torch.equal(back[key], cmt[key]) and back[key].shape == (3, 3, 3, 5, 16)
    assert 'version' not in back._metadata['pts_middle_encoder.conv_input.0']


def test_conversion_errors_name_the_keys():
    fixture = load_fixture('cmt_voxel0100_r50_fusion')
    cmt = random_cmt_state_dict(fixture['keys'], torch.Generator().manual_seed(0))
    model = build(COMPAT['cmt_voxel0100_r50_fusion'])
    extra = OrderedDict(cmt, **{'pts_bbox_head.unknown.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match=r'no counterpart.*pts_bbox_head\.unknown\.weight'):
        convert_cmt_state_dict(extra, model)
    missing = OrderedDict((k, v) for k, v in cmt.items() if 'post_norm.bias' not in k)
    with pytest.raises(ValueError, match=r'not in the checkpoint.*decoder\.post_norm\.bias'):
        convert_cmt_state_dict(missing, model)
    two_tasks = OrderedDict(cmt, **{'pts_bbox_head.task_heads.1.center.3.bias': torch.zeros(12)})
    with pytest.raises(ValueError, match='several CMT task heads'):
        convert_cmt_state_dict(two_tasks, model)
    vov = random_cmt_state_dict(load_fixture('cmt_voxel0075_vov_fusion')['keys'], torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match='no counterpart'):
        convert_cmt_state_dict(vov, model)


# ---------------------------------------------------------------- forward switches of the cmt_compat configs
def test_pixel_corner_and_centre():
    corner = pixel_centres((2, 3), (32, 48), offset=0.0)
    centre = pixel_centres((2, 3), (32, 48))
    assert corner[..., 0].tolist() == [[0, 16, 32]] * 2 and corner[..., 1].tolist() == [[0] * 3, [16] * 3]
    assert centre[..., 0].tolist() == [[8, 24, 40]] * 2 and centre[..., 1].tolist() == [[8] * 3, [24] * 3]


def _small_head(**kw):
    cfg = load_cfg('projects/configs/demo/cmt_demo_fusion_pillar_r18.py').model.pts_bbox_head
    cfg.update(kw)
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head.eval()


@pytest.mark.parametrize('pixel', ['corner', 'centre'])
def test_image_token_encoding_pixel(pixel):
    """The image tokens' encoding equals CMT's ``_rv_pe`` recomputed here (pixels ``arange(w) * W / w``, 64 depths
    ``1 + k * (x_max - 1) / 64``, inverse lidar2img, normalised to pc_range) for 'corner', and differs for 'centre'."""
    head = _small_head(img_token_pixel=pixel)
    img_hw, (h, w), N = (64, 160), (4, 10), 2
    l2i = torch.as_tensor(camera_rig(N, img_hw), dtype=torch.float32)[None]
    feat = torch.randn(N, head.hidden_dim, h, w)
    with torch.no_grad():
        _, pos, (ray_o, ray_d) = head._img_tokens(feat, l2i, torch.inverse(l2i), img_hw)
        pc = [float(v) for v in head.pc_range]
        D = head.depths.numel()
        inv = np.linalg.inv(l2i[0].double().numpy())
        ref = np.zeros((N, h, w, D * 3))
        for n in range(N):
            for i in range(h):
                for j in range(w):
                    u, v = j * img_hw[1] / w, i * img_hw[0] / h
                    for k in range(D):
                        d = 1 + k * (pc[3] - 1) / D
                        p = inv[n] @ np.array([u * d, v * d, d, 1.0])
                        ref[n, i, j, 3 * k:3 * k + 3] = [(p[c] - pc[c]) / (pc[c + 3] - pc[c]) for c in range(3)]
        ref_pos = head.rv_embedding(torch.as_tensor(ref, dtype=torch.float32)).reshape(1, N * h * w, -1)
    # the camera key lines of the bias go through the same pixels: the lifted points lie on them
    pts = torch.as_tensor(ref, dtype=torch.float64).view(N * h * w, D, 3)
    pts = pts * torch.tensor([pc[c + 3] - pc[c] for c in range(3)], dtype=torch.float64) + torch.tensor(pc[:3])
    off = pts - ray_o[0, :, None].double()
    dist2 = (off * off).sum(-1) - ((off * ray_d[0, :, None].double()).sum(-1))**2
    assert (pixel == 'corner') == bool(dist2.abs().max() < 1e-2), float(dist2.abs().max())  # m^2, fp32 rays
    if pixel == 'corner':
        torch.testing.assert_close(pos, ref_pos, atol=2e-4, rtol=1e-4)
    else:
        assert (pos - ref_pos).abs().max() > 1e-2


def test_bev_encoding_range():
    """BEV token encodings: with bev_encoding_range=pc_range the cells spread over pc_range, i.e. CMT's
    ``coords_bev`` x = (j + 0.5) / W, y = (i + 0.5) / H; by default the true cells of the grid (bev_range)."""
    pc = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
    grid = [-54.0, -54.0, -5.0, 48.4, 48.4, 3.0]
    H = W = 8
    for enc_range, cell in ((pc, 108 / 8), (None, 102.4 / 8)):
        head = _small_head(pc_range=pc, bev_range=grid, bev_encoding_range=enc_range)
        bev = torch.randn(1, head.shared_conv.conv.in_channels, H, W)
        with torch.no_grad():
            _, pos, (o, _) = head._bev_tokens(bev)
            ii, jj = torch.meshgrid(
                torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing='ij')
            x = ((jj + 0.5) * cell) / 108  # normalised by pc_range, row-major (H, W) order
            y = ((ii + 0.5) * cell) / 108
            coords = torch.stack([x.flatten(), y.flatten()], -1).float()
            ref = head.bev_embedding(pos2embed(coords, head.hidden_dim))
        torch.testing.assert_close(pos[0], ref, atol=1e-5, rtol=1e-5)
        # the key lines of the bias stay on the true grid cells either way
        assert o[1, 0].item() == pytest.approx(-54 + 1.5 * 102.4 / 8)


def test_fp16_attention_core_with_fp32_projections():
    """core_dtype='float16': q, k, v projected in fp32 then rounded to fp16 for the attention core, whose output
    is rounded to fp16 and projected by out_proj in fp32 (CMT's flash-attn cross-attention)."""
    torch.manual_seed(int(torch.randint(0, 2**31, ())))
    attn = GeometricBiasAttention(64, 4, use_bias=False, core_dtype='float16').eval()
    nn.init.normal_(attn.attn.in_proj_bias, std=0.1)
    q, kv = torch.randn(2, 7, 64), torch.randn(2, 11, 64)
    seen = {}
    attn.attn.out_proj.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    with torch.no_grad():
        out = attn(q, kv, kv)
        w, b = attn.attn.in_proj_weight.double(), attn.attn.in_proj_bias.double()

        def heads(x, s):  # fp32-exact projection, fp16 rounding
            return (x.double() @ w[s * 64:(s + 1) * 64].T + b[s * 64:(s + 1) * 64]).view(x.shape[0],
                                                                                         x.shape[1], 4, 16).transpose(
                                                                                             1, 2).half().double()

        qh, kh, vh = heads(q, 0), heads(kv, 1), heads(kv, 2)
        core = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(16), -1) @ vh
        core16 = core.transpose(1, 2).reshape(2, 7, 64).half()
        ref = q.double() + F.linear(core16.double(), attn.attn.out_proj.weight.double(),
                                    attn.attn.out_proj.bias.double())
    x = seen['x']
    assert x.dtype == torch.float32 and torch.equal(x, x.half().float())  # core output rounded to fp16
    assert out.dtype == torch.float32
    assert (x.double() - core16.double()).abs().max() <= 2 * 2**-10 * core.abs().max()
    torch.testing.assert_close(out.double(), ref, atol=3e-3, rtol=0)
    with pytest.raises(ValueError, match='core_dtype'):
        GeometricBiasAttention(64, 4, core_dtype='half')


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA (mmcv and spconv sparse conv kernels)')
def test_sparse_conv_outputs_agree_across_backends():
    """The same kernel, in mmcv's op and (converted) in spconv 2's, gives the same output on the same voxels."""
    spconv = pytest.importorskip('spconv.pytorch')
    from mmcv.ops import SparseConv3d, SparseConvTensor, SubMConv3d
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    shape, n = (12, 24, 24), 600
    flat = torch.randperm(shape[0] * shape[1] * shape[2], generator=gen)[:n]
    zyx = torch.stack([flat // (shape[1] * shape[2]), flat // shape[2] % shape[1], flat % shape[2]], 1)
    indices = torch.cat([torch.zeros(n, 1, dtype=torch.long), zyx], 1).int().cuda()
    feats = torch.randn(n, 5, generator=gen).cuda()
    cases = [(SubMConv3d, spconv.SubMConv3d, dict(kernel_size=3, padding=1)),
             (SparseConv3d, spconv.SparseConv3d, dict(kernel_size=(3, 1, 1), stride=(2, 1, 1)))]
    for mmcv_cls, sp_cls, kw in cases:
        ours = mmcv_cls(5, 16, bias=False, **kw).cuda()
        theirs = sp_cls(5, 16, bias=False, **kw).cuda()
        spec = sparse_conv_specs(nn.ModuleDict(dict(a=ours)))['a.weight']
        assert tuple(theirs.weight.shape) == layout_shape(spec, 'spconv2')
        theirs.weight.data.copy_(convert_kernel(ours.weight.data, 'mmcv', 'spconv2'))
        with torch.no_grad():
            out_mmcv = ours(SparseConvTensor(feats, indices, list(shape), 1)).dense()
            out_sp = theirs(spconv.SparseConvTensor(feats, indices, list(shape), 1)).dense()
        torch.testing.assert_close(out_sp, out_mmcv, atol=1e-3, rtol=1e-3)
