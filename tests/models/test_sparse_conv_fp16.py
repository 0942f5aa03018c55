"""model.sparse_conv_fp16_inference: the middle encoder through a cached fp16 copy of its weights at CUDA inference.

CPU: ``call_in_dtype`` against a cast deep copy of a module (bf16, exact), the cache following in-place weight
updates, the setting's check, the option inert on CPU. GPU: the routing (fp16 in eval, fp32 in training) and the
voxel0100 SparseEncoder (spconv 2) in fp16 against fp32.
"""
import copy
import os.path as osp

import pytest
import torch
from cmt_test_utils import DEMO, build_model, demo_batch, load_cfg, random_voxels
from torch import nn

from mmdet3d.registry import MODELS
from projects.mmdet3d_plugin.models.utils.sparse_conv_precision import CastWeights, call_in_dtype

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def small_module(seed: int) -> nn.Module:
    """Linear -> BN (random running statistics) -> ReLU -> Linear, eval mode."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4)).eval()
    m[1].running_mean.normal_()
    m[1].running_var.uniform_(0.5, 2.0)
    return m


def test_call_in_dtype_equals_a_cast_copy_and_keeps_the_weights():
    m = small_module(seed=int(torch.randint(0, 1000, ())))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(50, 5)
    out = call_in_dtype(m, CastWeights(torch.bfloat16), x)
    ref = copy.deepcopy(m).to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, ref)
    for k, v in m.state_dict().items():  # the module's own tensors: same dtype, same values
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k


def test_cast_weights_are_reused_until_a_weight_changes():
    m = small_module(seed=1)
    weights = CastWeights(torch.bfloat16)
    first = weights(m)
    assert weights(m) is first  # nothing changed: no new cast
    with torch.no_grad():
        m[0].weight.add_(1.0)  # an optimizer step writes in place
    second = weights(m)
    assert second is not first
    assert torch.equal(second['0.weight'], m[0].weight.detach().bfloat16())
    state = {k: v + 1 if v.is_floating_point() else v for k, v in m.state_dict().items()}
    m.load_state_dict(state)  # a checkpoint load copies in place
    third = weights(m)
    assert torch.equal(third['1.running_var'], m[1].running_var.bfloat16())
    assert third['1.num_batches_tracked'].dtype == torch.long  # integer buffers are not cast


def test_bad_setting_names_the_key():
    cfg = load_cfg(DEMO['lidar'])
    cfg.model.sparse_conv_fp16_inference = 'on'
    with pytest.raises(TypeError, match='model.sparse_conv_fp16_inference must be True or False'):
        MODELS.build(cfg.model)


def middle_encoder_input_dtypes(model, device, train: bool) -> list:
    """dtypes of the features reaching the middle encoder in one extract_pts_feat call."""
    seen = []
    handle = model.pts_middle_encoder.register_forward_pre_hook(lambda m, a: seen.append(a[0].dtype))
    model.to(device).train(train)
    data = demo_batch(model, 'lidar', num_gt=0, device=device)
    with torch.no_grad():
        bev = model.extract_pts_feat(data['inputs']['voxels'], 2)
    handle.remove()
    return seen + [bev.dtype]


def test_option_is_inert_on_cpu():
    model = build_model(DEMO['lidar'], bias_mode='exact')
    model.sparse_conv_fp16_inference = True
    assert middle_encoder_input_dtypes(model, 'cpu', train=False) == [torch.float32, torch.float32]


@pytest.mark.gpu
@gpu
def test_fp16_in_eval_fp32_in_training_on_cuda():
    model = build_model(DEMO['lidar'], bias_mode='exact')
    model.sparse_conv_fp16_inference = True
    weights = {k: v.clone() for k, v in model.pts_middle_encoder.state_dict().items()}
    assert middle_encoder_input_dtypes(model, 'cuda', train=False)[0] == torch.float16
    assert middle_encoder_input_dtypes(model, 'cuda', train=True)[0] == torch.float32
    for k, v in model.pts_middle_encoder.state_dict().items():
        assert v.dtype == weights[k].dtype and torch.equal(v.cpu(), weights[k].cpu()), k


@pytest.mark.gpu
@gpu
def test_fp16_sparse_encoder_stays_close_to_fp32():
    """The voxel0100 SparseEncoder (spconv 2, random init) on 300k random voxels: fp16 copy vs fp32 (TF32 off),
    relative error > 0 (it ran in fp16) and < 1e-2 (fp16 products, fp32 accumulation, 12 layers)."""
    pytest.importorskip('spconv.pytorch')
    from projects.mmdet3d_plugin.models.utils.sparse_conv_precision import sparse_conv_tf32
    from projects.mmdet3d_plugin.utils import load_config
    cfg = load_config(osp.join(ROOT, 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py'))
    torch.manual_seed(0)
    enc = MODELS.build(cfg.model.pts_middle_encoder).cuda().eval()
    g = torch.Generator().manual_seed(int(torch.randint(0, 1000, ())))
    coors = random_voxels(enc.sparse_shape, 300000, 1, g)
    feats = torch.randn(len(coors), cfg.model.pts_middle_encoder.in_channels, generator=g).cuda()
    coors = coors.cuda()
    with torch.no_grad():
        with sparse_conv_tf32(False):
            ref = enc(feats, coors, 1)
        out = call_in_dtype(enc, CastWeights(torch.float16), feats, coors, 1)
    assert out.dtype == torch.float16 and out.shape == ref.shape
    err = ((out.float() - ref).norm() / ref.norm()).item()
    print(f'fp16 vs fp32 SparseEncoder relative error {err:.3e}')
    assert 0 < err < 1e-2, err
    assert all(p.dtype == torch.float32 for p in enc.parameters())
