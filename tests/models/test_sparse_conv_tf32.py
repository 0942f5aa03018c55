"""model.sparse_conv_tf32: the spconv 2 TF32 flag during the middle encoder (faked spconv module on CPU) and the
middle encoder's TF32 output against fp32 on a GPU with spconv 2."""
import os.path as osp
import subprocess
import sys
import types

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
for path in (ROOT, osp.join(ROOT, 'tests')):  # run as a script (the child process of the GPU test)
    if path not in sys.path:
        sys.path.insert(0, path)

from cmt_test_utils import DEMO, build_model, demo_batch, load_cfg, random_voxels

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


@pytest.mark.parametrize('setting, cudnn, expected', [(None, True, True), (False, True, False), (True, False, True)])
def test_flag_is_set_during_the_middle_encoders_backward(fake_spconv, monkeypatch, setting, cudnn, expected):
    """spconv reads the flag in its backward too: set from the gradient reaching the encoder's output through the
    encoder's backward (seen at the gradient of its input), restored when the backward pass ends."""
    monkeypatch.setattr(torch.backends.cudnn, 'allow_tf32', cudnn)
    model = build_model(DEMO['lidar'], bias_mode='exact').train()
    model.sparse_conv_tf32 = setting
    seen = []

    def watch_input_grad(module, args):
        args[0].register_hook(lambda grad: seen.append(fake_spconv.SPCONV_ALLOW_TF32))

    model.pts_middle_encoder.register_forward_pre_hook(watch_input_grad)
    data = demo_batch(model, 'lidar', num_gt=0)
    bev = model.extract_pts_feat(data['inputs']['voxels'], 2)
    assert fake_spconv.SPCONV_ALLOW_TF32 is False  # restored after the forward
    bev.square().mean().backward()
    assert seen == [expected]  # during the encoder's backward
    assert fake_spconv.SPCONV_ALLOW_TF32 is False  # restored at the end of the backward pass


def test_bad_setting_names_the_key():
    with pytest.raises(TypeError, match='model.sparse_conv_tf32 must be None, True or False'):
        resolve_sparse_conv_tf32('yes')
    cfg = load_cfg(DEMO['lidar'])
    cfg.model.sparse_conv_tf32 = 'on'
    with pytest.raises(TypeError, match='model.sparse_conv_tf32'):
        MODELS.build(cfg.model)


def encoder_output(tf32: bool, out_path: str) -> None:
    """Child process: the voxel0100 SparseEncoder (random init, seed 0) on 300k random voxels of one sample, with
    spconv's TF32 flag as given, saved to ``out_path``. A process per setting: spconv tunes and caches a kernel per
    shape at its first call, so a second call in the same process would reuse the first setting's kernel."""
    from mmdet3d.utils import register_all_modules
    from projects.mmdet3d_plugin.utils import load_config
    register_all_modules(init_default_scope=False)
    cfg = load_config(osp.join(ROOT, 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py'))
    torch.manual_seed(0)
    enc = MODELS.build(cfg.model.pts_middle_encoder).cuda().eval()
    g = torch.Generator().manual_seed(0)
    coors = random_voxels(enc.sparse_shape, 300000, 1, g)
    feats = torch.randn(len(coors), cfg.model.pts_middle_encoder.in_channels, generator=g)
    with torch.no_grad(), sparse_conv_tf32(tf32):
        out = enc(feats.cuda(), coors.cuda(), 1)
    torch.save(out.cpu(), out_path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_tf32_sparse_encoder_stays_close_to_fp32(tmp_path):
    """The voxel0100 SparseEncoder (spconv 2) in TF32 vs fp32, one fresh process each: relative error > 0 (the flag
    reaches spconv's kernel choice) and < 2e-2 (TF32 products, fp32 accumulation, 12 layers)."""
    pytest.importorskip('spconv.pytorch')
    outs = {}
    for tf32 in (False, True):
        path = tmp_path / f'tf32_{int(tf32)}.pt'
        subprocess.run([sys.executable, __file__, str(int(tf32)), str(path)], check=True, cwd=ROOT, timeout=300)
        outs[tf32] = torch.load(path)
    ref, out = outs[False], outs[True]
    err = ((out - ref).norm() / ref.norm()).item()
    print(f'TF32 vs fp32 SparseEncoder relative error {err:.3e}')
    assert 0 < err < 2e-2, err


if __name__ == '__main__':
    encoder_output(bool(int(sys.argv[1])), sys.argv[2])
