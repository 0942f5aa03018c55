"""model.sparse_conv_tf32: the spconv 2 TF32 flag during the middle encoder (faked spconv module on CPU) and the
middle encoder's TF32 output against fp32 on a GPU with spconv 2."""
import sys
import types

import pytest
import torch
from cmt_test_utils import DEMO, build_model, demo_batch, load_cfg

from mmdet3d.registry import MODELS
from projects.mmdet3d_plugin.models.utils.sparse_conv_precision import resolve_sparse_conv_tf32, sparse_conv_tf32


@pytest.fixture
def fake_spconv(monkeypatch):
    constants = types.SimpleNamespace(SPCONV_ALLOW_TF32=False)
    monkeypatch.setitem(sys.modules, 'spconv', types.SimpleNamespace(constants=constants))
    return constants


@pytest.mark.parametrize('setting, cudnn, expected', [(None, True, True), (None, False, False), (True, False, True),
                                                      (False, True, False)])
def test_flag_is_set_during_the_middle_encoder_only(fake_spconv, monkeypatch, setting, cudnn, expected):
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', cudnn)
    model = build_model(DEMO['lidar'], bias_mode='exact')
    model.sparse_conv_tf32 = setting
    seen = []
    model.pts_middle_encoder.register_forward_pre_hook(lambda m, a: seen.append(fake_spconv.SPCONV_ALLOW_TF32))
    model.pts_backbone.register_forward_pre_hook(lambda m, a: seen.append(fake_spconv.SPCONV_ALLOW_TF32))
    data = demo_batch(model, 'lidar', num_gt=0)
    with torch.no_grad():
        model.extract_pts_feat(data['inputs']['voxels'], 2)
    assert seen == [expected, False]  # set for the middle encoder, restored before SECOND
    assert fake_spconv.SPCONV_ALLOW_TF32 is False


def test_bad_setting_names_the_key():
    with pytest.raises(TypeError, match='model.sparse_conv_tf32 must be None, True or False'):
        resolve_sparse_conv_tf32('yes')
    cfg = load_cfg(DEMO['lidar'])
    cfg.model.sparse_conv_tf32 = 'on'
    with pytest.raises(TypeError, match='model.sparse_conv_tf32'):
        MODELS.build(cfg.model)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_tf32_sparse_encoder_stays_close_to_fp32():
    """The voxel0100 SparseEncoder (spconv 2) in TF32 vs fp32 on random voxels: relative error < 1e-2, not 0."""
    pytest.importorskip('spconv.pytorch')
    from mmdet3d.utils import register_all_modules
    from projects.mmdet3d_plugin.utils import load_config
    register_all_modules(init_default_scope=False)
    cfg = load_config('projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    torch.manual_seed(0)
    enc = MODELS.build(cfg.model.pts_middle_encoder).cuda().eval()
    z, y, x = enc.sparse_shape
    n = 60000
    coors = torch.stack([
        torch.randint(0, 2, (n, )),
        torch.randint(0, z, (n, )),
        torch.randint(0, y, (n, )),
        torch.randint(0, x, (n, ))
    ], 1).unique(dim=0).int().cuda()
    feats = torch.randn(len(coors), cfg.model.pts_middle_encoder.in_channels, device='cuda')
    with torch.no_grad():
        with sparse_conv_tf32(False):
            ref = enc(feats, coors, 2)
        with sparse_conv_tf32(True):
            out = enc(feats, coors, 2)
    err = ((out - ref).norm() / ref.norm()).item()
    assert 0 < err < 1e-2, err
