"""SparseEncoderSharedIndices: one submanifold index build per stage, the same features and gradients as mmdet3d's
SparseEncoder with the same weights.

CPU (mmcv's sparse convolution has no CPU kernels): the keys every SubMConv3d gets, the unchanged state-dict, the
errors for layers that cannot share. GPU (spconv 2 if installed, else mmcv's CUDA op): the voxel0100 encoder on
random voxels against ``SparseEncoder`` with the same weights, forward and backward, and the index builds counted.
"""
import os.path as osp

import pytest
import torch
from cmt_test_utils import random_voxels

from mmdet3d.models.layers import make_sparse_convmodule
from mmdet3d.registry import MODELS
from projects.mmdet3d_plugin.models.middle_encoders import SparseEncoderSharedIndices
from projects.mmdet3d_plugin.models.middle_encoders.sparse_encoder_shared_indices import submanifold_convs
from projects.mmdet3d_plugin.utils import load_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEED_CONFIG = osp.join(ROOT, 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


def encoder_cfg(**overrides) -> dict:
    """The seed config's middle encoder (voxel 0.1 m, basic blocks) with ``overrides``."""
    cfg = load_config(SEED_CONFIG).model.pts_middle_encoder.to_dict()
    cfg.update(overrides)
    return cfg


def test_seed_config_uses_it():
    assert encoder_cfg()['type'] == 'SparseEncoderSharedIndices'


def test_every_submanifold_conv_of_a_stage_gets_the_stage_key():
    enc = MODELS.build(encoder_cfg())
    assert isinstance(enc, SparseEncoderSharedIndices)
    assert enc.conv_input[0].indice_key == 'subm1'
    n_convs = 0
    for i, stage in enumerate(enc.encoder_layers):
        convs = submanifold_convs(stage)
        assert len(convs) == 4  # two basic blocks of two convolutions
        assert {c.indice_key for c in convs} == {f'subm{i + 1}'}
        n_convs += len(convs)
    assert n_convs == 16
    # the strided convolutions keep mmdet3d's own keys
    assert [s[-1][0].indice_key for s in list(enc.encoder_layers)[:-1]] == ['spconv1', 'spconv2', 'spconv3']


def test_same_parameters_as_sparse_encoder():
    torch.manual_seed(0)
    ref = MODELS.build(encoder_cfg(type='SparseEncoder'))
    shared = MODELS.build(encoder_cfg())
    ref_state, shared_state = ref.state_dict(), shared.state_dict()
    assert list(ref_state) == list(shared_state)
    assert all(ref_state[k].shape == shared_state[k].shape for k in ref_state)
    shared.load_state_dict(ref_state)  # strict


def test_layers_that_cannot_share_are_refused():
    conv_module = MODELS.build(
        encoder_cfg(
            block_type='conv_module',
            encoder_paddings=((1, ), (1, 1, 1), (1, 1, 1), ((0, 1, 1), 1, 1)),
            encoder_channels=((16, ), (32, 32, 32), (64, 64, 64), (64, 64, 64))))
    # mmdet3d's conv_module blocks already carry the stage keys: accepted unchanged
    assert {c.indice_key for c in submanifold_convs(conv_module.encoder_layers[1])} == {'subm2'}

    class WrongKey(SparseEncoderSharedIndices):

        def make_encoder_layers(self, make_block, norm_cfg, in_channels, block_type='conv_module', conv_cfg=None):
            return super().make_encoder_layers(make_block, norm_cfg, in_channels, block_type,
                                               dict(type='SubMConv3d', indice_key='mine'))

    with pytest.raises(ValueError, match=r"stage 1: a SubMConv3d has indice_key 'mine'.*expects none or 'subm1'"):
        WrongKey(**{k: v for k, v in encoder_cfg().items() if k != 'type'})

    enc = MODELS.build(encoder_cfg())
    enc.conv_input[0].kernel_size = [5, 5, 5]  # its pairs would differ from the 3x3x3 blocks' of stage 1
    with pytest.raises(ValueError, match=r'stage 1: SubMConv3d layers with kernel_size/dilation'):
        enc.make_encoder_layers(
            make_sparse_convmodule, dict(type='BN1d', eps=1e-3, momentum=0.01), 16, block_type='basicblock')


def index_reuse(enc) -> list:
    """Per SubMConv3d call in forward order: True when its index pairs were already built (key in the input's
    ``indice_dict``). Returns the list the forward pre-hooks fill."""
    seen = []
    for conv in submanifold_convs(enc):
        conv.register_forward_pre_hook(lambda m, args: seen.append(m.indice_key in args[0].indice_dict))
    return seen


def frozen_norms(enc):
    """Convolutions in training mode (spconv then keeps the backward's index data too), batch norms in eval mode
    (fixed statistics: their backward does not amplify rounding differences by subtracting batch means)."""
    enc.train()
    for m in enc.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    return enc


@pytest.mark.gpu
@gpu
def test_same_features_and_gradients_as_sparse_encoder_on_gpu():
    """voxel0100 encoders with the same random weights, 2 samples of random voxels, fp32 with TF32 off: the BEV
    features and the gradients of the input features and of every weight agree to 1e-4 (relative Frobenius norm;
    the plain encoder run twice gives the rounding floor, printed); 4 index builds, against 17 for the plain encoder
    under spconv 2 (mmcv's op, used without spconv, finds keyless pairs again by itself)."""
    from projects.mmdet3d_plugin.models.utils.sparse_conv_precision import sparse_conv_tf32
    seed = int(torch.randint(0, 10000, ()))
    torch.manual_seed(seed)
    ref = frozen_norms(MODELS.build(encoder_cfg(type='SparseEncoder')).cuda())
    shared = frozen_norms(MODELS.build(encoder_cfg()).cuda())
    shared.load_state_dict(ref.state_dict())
    reused = {'ref': index_reuse(ref), 'shared': index_reuse(shared)}
    g = torch.Generator().manual_seed(seed)
    coors = random_voxels(ref.sparse_shape, 120000, 2, g).cuda()
    feats = torch.randn(len(coors), 5, generator=g).cuda()
    grad_out = None

    def run(enc):
        nonlocal grad_out
        enc.zero_grad()
        x = feats.clone().requires_grad_()
        with torch.backends.cudnn.flags(allow_tf32=False), sparse_conv_tf32(False):
            out = enc(x, coors, 2)
            if grad_out is None:
                grad_out = torch.randn(out.shape, generator=g).cuda()
            out.backward(grad_out)
        return [out.detach(), x.grad] + [p.grad.clone() for p in enc.parameters()]

    def rel(a, b):
        return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()

    plain = run(ref)
    n_plain = len(reused['ref'])
    floor = max(rel(a, b) for a, b in zip(run(ref), plain))
    errs = [rel(a, b) for a, b in zip(run(shared), plain)]
    print(f'shared vs plain: output {errs[0]:.1e}, gradients max {max(errs[1:]):.1e}; plain twice {floor:.1e}')
    assert plain[0].shape == (2, 256, 128, 128)
    assert max(errs) < 1e-4, errs
    from mmdet3d.models.layers.spconv import IS_SPCONV2_AVAILABLE
    if IS_SPCONV2_AVAILABLE:  # spconv rebuilds the pairs of every keyless SubMConv3d; mmcv's op reuses them itself
        assert reused['ref'][:n_plain] == [False] * 17
    first_of_stage = [True] + [False] * 4 + [True] + [False] * 3 + [True] + [False] * 3 + [True] + [False] * 3
    assert reused['shared'] == [not f for f in first_of_stage]
