"""Image branch modules: VoVNet backbone, CPFPN neck, GridMask, pretrained
checkpoint loading. CPU only, small inputs (VoVNet-99 is built and run once)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmdet3d.registry import MODELS
from projects.mmdet3d_plugin.models.backbones import VOVNET_SPECS, VoVNet
from projects.mmdet3d_plugin.models.necks import CPFPN
from projects.mmdet3d_plugin.models.utils import GridMask, check_pretrained_path, require_checkpoint_file

STRIDES = {'stem': 4, 'stage2': 4, 'stage3': 8, 'stage4': 16, 'stage5': 32}
# (stem, mid channels, out channels, layers per block, blocks per stage, dw)
# as published in the VoVNet / CenterMask repositories.
SPEC_TABLE = {
    'V-19-slim-dw-eSE': ((64, 64, 64), (64, 80, 96, 112), (112, 256, 384, 512), 3, (1, 1, 1, 1), True),
    'V-19-dw-eSE': ((64, 64, 64), (128, 160, 192, 224), (256, 512, 768, 1024), 3, (1, 1, 1, 1), True),
    'V-19-slim-eSE': ((64, 64, 128), (64, 80, 96, 112), (112, 256, 384, 512), 3, (1, 1, 1, 1), False),
    'V-19-eSE': ((64, 64, 128), (128, 160, 192, 224), (256, 512, 768, 1024), 3, (1, 1, 1, 1), False),
    'V-39-eSE': ((64, 64, 128), (128, 160, 192, 224), (256, 512, 768, 1024), 5, (1, 1, 2, 2), False),
    'V-57-eSE': ((64, 64, 128), (128, 160, 192, 224), (256, 512, 768, 1024), 5, (1, 1, 4, 3), False),
    'V-99-eSE': ((64, 64, 128), (128, 160, 192, 224), (256, 512, 768, 1024), 5, (1, 3, 9, 3), False),
}


def vovnet_param_count(name, ese_every_block=True, classifier=0):
    """Trainable parameters of a VoVNet from its channel table.

    conv k x k (no bias): k^2 * c_in * c_out / groups; BN: 2 c; eSE fc: c^2 + c.
    OSA block (in, mid s, out c, L layers): L 3x3 convs (first from `in`,
    dw: 3x3 depthwise + 1x1 and a 1x1 reduction when in != s), a 1x1 concat
    conv from in + L s channels, eSE.
    """
    stem, mids, outs, L, blocks, dw = SPEC_TABLE[name]
    n = 9 * 3 * stem[0] + 2 * stem[0]
    for a, b in ((stem[0], stem[1]), (stem[1], stem[2])):
        n += (9 * b + a * b if dw else 9 * a * b) + 2 * b
    prev = stem[2]
    for s, c, k in zip(mids, outs, blocks):
        for j in range(k):
            cin = prev if j == 0 else c
            if dw:
                n += (cin * s + 2 * s if cin != s else 0)
                n += L * (9 * s + s * s + 2 * s)
            else:
                n += 9 * cin * s + (L - 1) * 9 * s * s + 2 * s * L
            n += (cin + L * s) * c + 2 * c
            if ese_every_block or j == k - 1:
                n += c * c + c
        prev = c
    return n + (outs[-1] * classifier + classifier if classifier else 0)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope='module')
def vov99():
    torch.manual_seed(0)
    return VoVNet('V-99-eSE', out_features=('stage4', 'stage5')).eval()


@pytest.fixture
def vov19dw():
    torch.manual_seed(0)
    return VoVNet('V-19-slim-dw-eSE', out_features=STRIDES.keys())


# ------------------------------------------------------------------ VoVNet
def test_param_count_formula_matches_published_timm_counts():
    # timm's ese_vovnet*b (eSE on the last block of a stage, 1000-class head)
    # publishes 6.54 M / 24.57 M / 38.61 M / 63.20 M parameters.
    published = {'V-19-dw-eSE': 6.54, 'V-39-eSE': 24.57, 'V-57-eSE': 38.61, 'V-99-eSE': 63.20}
    for name, millions in published.items():
        count = vovnet_param_count(name, ese_every_block=False, classifier=1000)
        assert abs(count / 1e6 - millions) < 0.006, (name, count)


@pytest.mark.parametrize('name', sorted(set(SPEC_TABLE) - {'V-99-eSE'}))
def test_param_count_every_spec(name):  # V-99: with the shared instance
    assert set(VOVNET_SPECS) == set(SPEC_TABLE)
    net = VoVNet(name)
    assert n_params(net) == vovnet_param_count(name)
    # Blocks after the first of a stage add their input (identity residual).
    for i, stage in enumerate(('stage2', 'stage3', 'stage4', 'stage5')):
        blocks = [m for n, m in getattr(net, stage).named_children() if n.startswith('OSA')]
        assert len(blocks) == SPEC_TABLE[name][4][i]
        assert [b.identity for b in blocks] == [False] + [True] * (len(blocks) - 1)


def test_vovnet99_params_names_and_forward(vov99):
    # Checkpoint-compatible V-99-eSE has eSE in all 16 blocks.
    assert n_params(vov99) == vovnet_param_count('V-99-eSE') == 69_523_520
    keys = set(vov99.state_dict())
    for k in ('stem.stem_1/conv.weight', 'stem.stem_3/norm.running_var', 'stage2.OSA2_1.layers.0.OSA2_1_0/conv.weight',
              'stage2.OSA2_1.layers.4.OSA2_1_4/norm.bias', 'stage2.OSA2_1.concat.OSA2_1_concat/conv.weight',
              'stage2.OSA2_1.ese.fc.weight', 'stage4.OSA4_9.ese.fc.bias',
              'stage5.OSA5_3.concat.OSA5_3_concat/norm.num_batches_tracked'):
        assert k in keys, k
    assert 'stage4.OSA4_10.ese.fc.bias' not in keys
    assert vov99.out_channels == [768, 1024]
    assert vov99.out_strides == [16, 32]
    with torch.no_grad():
        outs = vov99(torch.randn(1, 3, 64, 160))
    assert [tuple(o.shape) for o in outs] == [(1, 768, 4, 10), (1, 1024, 2, 5)]
    assert all(torch.isfinite(o).all() for o in outs)


def _pool_out(n):  # 3x3/2 max-pool, ceil mode, no padding (PyTorch rule)
    out = math.ceil((n - 3) / 2) + 1
    return out - 1 if (out - 1) * 2 >= n else out


def test_vovnet19_shapes_strides_any_size(vov19dw):
    vov19dw.eval()
    for h, w in ((64, 160), (70, 150)):
        with torch.no_grad():
            outs = vov19dw(torch.randn(2, 3, h, w))
        size = [h, w]
        expected = []
        for name in STRIDES:
            if name == 'stem':  # three 3x3 convs, strides 2, 1, 2, padding 1
                size = [(n - 1) // 2 + 1 for n in size]
                size = [(n - 1) // 2 + 1 for n in size]
            elif name != 'stage2':
                size = [_pool_out(n) for n in size]
            expected.append(tuple(size))
        assert [tuple(o.shape[2:]) for o in outs] == expected
        if (h, w) == (64, 160):
            assert expected == [(h // s, w // s) for s in STRIDES.values()]
    assert [o.shape[1] for o in outs] == [64, 112, 256, 384, 512]
    assert vov19dw.out_channels == [64, 112, 256, 384, 512]
    assert vov19dw.out_strides == list(STRIDES.values())


def test_vovnet_osa_block_matches_functional_reference():
    """One V-19-slim-eSE OSA block against conv/bn math written here."""
    torch.manual_seed(1)
    net = VoVNet('V-19-slim-eSE', out_features=('stage3', )).eval()
    blk = net.stage3.OSA3_1
    for m in blk.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(2, 112, 9, 11, dtype=torch.float64)
    sd = {k: v.double() for k, v in blk.state_dict().items()}

    def cbr(x, pre, pad):
        y = F.conv2d(x, sd[pre + '/conv.weight'], padding=pad)
        y = F.batch_norm(
            y,
            sd[pre + '/norm.running_mean'],
            sd[pre + '/norm.running_var'],
            sd[pre + '/norm.weight'],
            sd[pre + '/norm.bias'],
            eps=1e-5)
        return y.clamp_min(0)

    feats, y = [x], x
    for i in range(3):
        y = cbr(y, f'layers.{i}.OSA3_1_{i}', 1)
        feats.append(y)
    y = cbr(torch.cat(feats, 1), 'concat.OSA3_1_concat', 0)
    gate = F.conv2d(y.mean((2, 3), keepdim=True), sd['ese.fc.weight'], sd['ese.fc.bias'])
    ref = y * ((gate + 3).clamp(0, 6) / 6)
    out = blk.double()(x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_frozen_stages_and_norm_eval():
    torch.manual_seed(0)
    net = VoVNet('V-19-slim-dw-eSE', frozen_stages=2, norm_eval=False)
    frozen = ('stem.', 'stage2.', 'stage3.')
    for name, p in net.named_parameters():
        assert p.requires_grad == (not name.startswith(frozen)), name
    net.train()
    for name in ('stem', 'stage2', 'stage3'):
        assert not any(m.training for m in getattr(net, name).modules())
    assert all(m.training for m in net.stage4.modules())
    bn_frozen = net.stage3.OSA3_1.concat[1]
    bn_free = net.stage4.OSA4_1.concat[1]
    before = bn_frozen.running_mean.clone(), bn_free.running_mean.clone()
    out = net(torch.randn(2, 3, 64, 64))
    sum(o.sum() for o in out[-2:]).backward()
    assert torch.equal(bn_frozen.running_mean, before[0])
    assert not torch.equal(bn_free.running_mean, before[1])
    assert net.stem[0].weight.grad is None
    assert net.stage4.OSA4_1.concat[0].weight.grad is not None

    net = VoVNet('V-19-slim-dw-eSE', frozen_stages=-1, norm_eval=True).train()
    assert all(p.requires_grad for p in net.parameters())
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert net.stage4.training


def test_vovnet_bad_arguments():
    with pytest.raises(ValueError, match="spec_name 'V-98-eSE'"):
        VoVNet('V-98-eSE')
    with pytest.raises(ValueError, match='stage6'):
        VoVNet('V-19-slim-dw-eSE', out_features=('stage4', 'stage6'))
    with pytest.raises(ValueError, match='frozen_stages'):
        VoVNet('V-19-slim-dw-eSE', frozen_stages=5)


def test_vovnet_with_cp_same_gradients():
    torch.manual_seed(0)
    a = VoVNet('V-19-slim-dw-eSE', out_features=('stage5', )).train()
    b = VoVNet('V-19-slim-dw-eSE', out_features=('stage5', ), with_cp=True).train()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    a(x)[0].square().mean().backward()
    b(x)[0].square().mean().backward()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=n)


# ------------------------------------------------------------------ CPFPN
def test_cpfpn_structure_and_math():
    torch.manual_seed(0)
    neck = MODELS.build(dict(type='CPFPN', in_channels=[768, 1024], out_channels=256, num_outs=2))
    assert type(neck) is CPFPN and MODELS.get('CmtCPFPN') is CPFPN
    neck.init_weights()
    # 1x1 laterals on both levels, a 3x3 output conv only on level 0.
    shapes = {k: tuple(v.shape) for k, v in neck.state_dict().items()}
    assert shapes == {
        'lateral_convs.0.conv.weight': (256, 768, 1, 1),
        'lateral_convs.0.conv.bias': (256, ),
        'lateral_convs.1.conv.weight': (256, 1024, 1, 1),
        'lateral_convs.1.conv.bias': (256, ),
        'fpn_convs.0.conv.weight': (256, 256, 3, 3),
        'fpn_convs.0.conv.bias': (256, ),
    }
    neck = neck.double()
    x0 = torch.randn(2, 768, 8, 20, dtype=torch.float64)
    x1 = torch.randn(2, 1024, 4, 10, dtype=torch.float64)
    out0, out1 = neck((x0, x1))
    sd = neck.state_dict()
    lat1 = F.conv2d(x1, sd['lateral_convs.1.conv.weight'], sd['lateral_convs.1.conv.bias'])
    lat0 = F.conv2d(x0, sd['lateral_convs.0.conv.weight'], sd['lateral_convs.0.conv.bias'])
    up = lat1.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    ref0 = F.conv2d(lat0 + up, sd['fpn_convs.0.conv.weight'], sd['fpn_convs.0.conv.bias'], padding=1)
    torch.testing.assert_close(out0, ref0)
    torch.testing.assert_close(out1, lat1)  # no conv on the coarse level
    # Every parameter gets a gradient from level 0 alone (the head's input).
    out0.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in neck.parameters())


def test_cpfpn_extra_levels_odd_sizes_and_errors():
    neck = CPFPN([16, 32], 8, num_outs=3)
    outs = neck((torch.randn(1, 16, 9, 13), torch.randn(1, 32, 5, 7)))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 9, 13), (1, 8, 5, 7), (1, 8, 3, 4)]
    torch.testing.assert_close(outs[2], outs[1][:, :, ::2, ::2])
    with pytest.raises(ValueError, match='expected 2 with channels'):
        neck((torch.randn(1, 16, 9, 13), ))
    with pytest.raises(ValueError, match='num_outs'):
        CPFPN([16, 32], 8, num_outs=1)


# ------------------------------------------------------------------ GridMask
def reference_grid_mask(h, w, d, st_h, st_w, ratio, mode, use_h=True, use_w=True, rot90=False):
    """Loop form of the GridMask canvas (as in the GridMask paper's code)."""
    hh, ww = int(1.5 * h), int(1.5 * w)
    l = min(max(int(d * ratio + 0.5), 1), d - 1)
    mask = np.ones((hh, ww), np.float32)
    if use_h:
        for i in range(hh // d):
            s = d * i + st_h
            mask[s:min(s + l, hh), :] = 0
    if use_w:
        for i in range(ww // d):
            s = d * i + st_w
            mask[:, s:min(s + l, ww)] = 0
    if rot90:
        mask = np.rot90(mask)  # counter-clockwise as displayed
    top, left = (hh - h) // 2, (ww - w) // 2
    mask = mask[top:top + h, left:left + w]
    return 1 - mask if mode == 1 else mask


def test_grid_mask_pattern_matches_loop_reference():
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(3, 40, 2))
        d = int(rng.integers(2, h))
        st_h, st_w = (int(v) for v in rng.integers(0, d, 2))
        ratio = float(rng.uniform(0.1, 0.9))
        mode, use_h, use_w = trial % 2, trial % 3 != 1, trial % 3 != 2
        gm = GridMask(use_h, use_w, ratio=ratio, mode=mode)
        ref = reference_grid_mask(h, w, d, st_h, st_w, ratio, mode, use_h, use_w)
        np.testing.assert_array_equal(gm.make_mask(h, w, d, st_h, st_w).numpy(), ref)
    gm = GridMask(True, True, ratio=0.4, mode=1)  # square canvas: rot90 exact
    for d, st_h, st_w in ((5, 1, 3), (7, 0, 6), (3, 2, 2)):
        np.testing.assert_array_equal(
            gm.make_mask(16, 16, d, st_h, st_w, angle=90.0).numpy(),
            reference_grid_mask(16, 16, d, st_h, st_w, 0.4, 1, rot90=True))


@pytest.mark.parametrize('ratio,mode', [(0.5, 1), (0.3, 0)])
def test_grid_mask_dropped_fraction_statistics(ratio, mode):
    h, w = 12, 20
    # Exact expectation over d ~ U{2..h-1}, st_h, st_w ~ U{0..d-1}.
    expected = np.mean([
        np.mean([1 - reference_grid_mask(h, w, d, a, b, ratio, mode).mean() for a in range(d) for b in range(d)])
        for d in range(2, h)
    ])
    gm = GridMask(True, True, rotate=1, offset=False, ratio=ratio, mode=mode, prob=1.0).train()
    torch.manual_seed(123)
    x = torch.rand(3, 2, h, w) + 0.5  # strictly positive
    fracs = []
    for _ in range(400):
        y = gm(x)
        dropped = y == 0
        # one mask for every image and channel; kept pixels untouched
        assert torch.equal(dropped, dropped[:1, :1].expand_as(dropped))
        assert torch.equal(y[~dropped], x[~dropped])
        fracs.append(dropped.float().mean().item())
    fracs = np.array(fracs)
    stderr = fracs.std() / np.sqrt(len(fracs))
    assert abs(fracs.mean() - expected) < 4 * stderr + 1e-3, (fracs.mean(), expected, stderr)
    if mode == 1:  # CMT's setting drops about a quarter of the pixels
        assert 0.15 < expected < 0.35


def test_grid_mask_prob_eval_and_offset():
    x = torch.rand(2, 3, 16, 24) + 0.5
    gm = GridMask(True, True, rotate=1, ratio=0.5, mode=1, prob=0.7).train()
    torch.manual_seed(7)
    applied = [bool((gm(x) == 0).any()) for _ in range(400)]
    assert abs(np.mean(applied) - 0.7) < 4 * math.sqrt(0.21 / 400)
    assert gm.eval()(x) is x
    assert GridMask(prob=0.0).train()(x) is x
    gm = GridMask(True, True, offset=True, ratio=0.5, mode=1).train()
    y = gm(x)
    changed = y != x
    assert changed.any()
    assert torch.equal(changed, changed[:1, :1].expand_as(changed))
    assert (y[changed].abs() <= 1).all()  # dropped pixels hold U(-1, 1) noise
    assert MODELS.build(dict(type='GridMask', use_h=True, use_w=True, ratio=0.5, mode=1, prob=0.7)).prob == 0.7
    with pytest.raises(ValueError, match='mode'):
        GridMask(mode=2)


# ------------------------------------------------------------------ pretrained
def test_missing_pretrained_file_error(tmp_path):
    path = tmp_path / 'ckpts' / 'fcos3d_vovnet_imgbackbone-remapped.pth'
    net = VoVNet('V-19-slim-dw-eSE', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(FileNotFoundError) as err:
        net.init_weights()
    msg = str(err.value)
    assert str(path) in msg
    assert 'model.img_backbone.init_cfg.checkpoint' in msg
    with pytest.raises(FileNotFoundError, match=r"init_cfg\[1\]\.checkpoint"):
        check_pretrained_path(
            [dict(type='Kaiming', layer='Conv2d'),
             dict(type='Pretrained', checkpoint=str(tmp_path / 'nope.pth'))],
            key='init_cfg')
    with pytest.raises(FileNotFoundError, match="'load_from'"):
        require_checkpoint_file(str(tmp_path / 'nuim_r50.pth'), 'load_from')
    require_checkpoint_file(__file__, 'load_from')  # existing file passes
    with pytest.raises(ValueError, match='needs a checkpoint'):
        check_pretrained_path(dict(type='Pretrained'), 'x')
    url = 'torchvision://resnet50'
    assert check_pretrained_path(dict(type='Pretrained', checkpoint=url)) == [url]
    assert check_pretrained_path(None) == []


def test_pretrained_round_trip(tmp_path):
    torch.manual_seed(3)
    src = VoVNet('V-19-slim-dw-eSE')
    src.train()(torch.randn(2, 3, 32, 32))  # BN running stats leave defaults
    sd = src.state_dict()
    plain, prefixed = tmp_path / 'vov.pth', tmp_path / 'det.pth'
    torch.save(sd, plain)
    # CMT's remapped checkpoint stores detector keys (img_backbone.*).
    torch.save({'state_dict': {'img_backbone.' + k: v for k, v in sd.items()}}, prefixed)
    for init_cfg in (dict(type='Pretrained', checkpoint=str(plain)),
                     dict(type='Pretrained', checkpoint=str(prefixed), prefix='img_backbone.')):
        torch.manual_seed(4)
        dst = MODELS.build(dict(type='VoVNet', spec_name='V-19-slim-dw-eSE', init_cfg=init_cfg))
        assert not torch.equal(dst.stem[0].weight, sd['stem.stem_1/conv.weight'])
        dst.init_weights()
        loaded = dst.state_dict()
        assert loaded.keys() == sd.keys()
        for k, v in sd.items():
            assert torch.equal(loaded[k], v), k


# ------------------------------------------------------------------ GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_gpu_vovnet99_1600x640_and_grid_mask_device():
    """CMT's VoV configs: 6 views of 640x1600, fp16 autocast, train mode."""
    x = torch.rand(6, 3, 640, 1600, device='cuda')
    gm = GridMask(True, True, rotate=1, ratio=0.5, mode=1, prob=1.0).train()
    torch.manual_seed(5)
    y_gpu = gm(x)
    torch.manual_seed(5)
    y_cpu = gm(x.cpu())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu)
    peaks, grads = [], []
    for with_cp in (False, True):
        torch.manual_seed(0)
        net = VoVNet('V-99-eSE', out_features=('stage4', 'stage5'), with_cp=with_cp).cuda().train()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.autocast('cuda', dtype=torch.float16):
            outs = net(y_gpu)
        assert [tuple(o.shape) for o in outs] == [(6, 768, 40, 100), (6, 1024, 20, 50)]
        # sum, not mean: a mean's 1/N per-element gradient underflows in fp16 backward (all-zero grads)
        (sum(o.float().sum() for o in outs) * 1e-3).backward()
        peaks.append(torch.cuda.max_memory_allocated() - base)
        grads.append(net.stem[0].weight.grad.float().clone())
        del net, outs
    print(f'V-99-eSE 6x640x1600 fp16 train peak MiB: no cp '
          f'{peaks[0] / 2**20:.0f}, with_cp {peaks[1] / 2**20:.0f}')
    assert peaks[1] < 0.7 * peaks[0], peaks
    assert (grads[1] - grads[0]).norm() < 1e-2 * grads[0].norm()
