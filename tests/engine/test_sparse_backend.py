"""The sparse-conv backend read from the built model (and its place in the GPUMemoryHook log and summary)."""
import sys
import types

import mmcv
import pytest
from mmcv.ops import SubMConv3d as MmcvSubMConv3d
from mmcv.ops.sparse_conv import SparseConvolution as MmcvSparseConvolution
from torch import nn

from mmdet3d.models.layers.spconv import IS_SPCONV2_AVAILABLE  # imported before any test fakes spconv
from projects.mmdet3d_plugin.engine import sparse_conv_backend
from tests.engine.memory_hook_toy import ToyModel, read_outputs, train_toy


def _fake_spconv(monkeypatch, version='2.3.6'):
    """A module tree that looks like spconv 2's (``spconv.pytorch.conv.SubMConv3d``) and its classes."""
    spconv = types.ModuleType('spconv')
    spconv.__version__ = version
    conv = types.ModuleType('spconv.pytorch.conv')

    class SparseConvolution(nn.Module):

        def __init__(self, cin, cout):
            super().__init__()
            self.lin = nn.Linear(cin, cout)

    class SubMConv3d(SparseConvolution):
        pass

    for cls in (SparseConvolution, SubMConv3d):
        cls.__module__ = 'spconv.pytorch.conv'
        setattr(conv, cls.__name__, cls)
    monkeypatch.setitem(sys.modules, 'spconv', spconv)
    monkeypatch.setitem(sys.modules, 'spconv.pytorch.conv', conv)
    return conv


def test_mmcv_sparse_encoder_reports_mmcv(mmdet3d_scope):
    if IS_SPCONV2_AVAILABLE:
        pytest.skip('spconv 2 is installed: SparseEncoder builds spconv convolutions')
    from mmdet3d.registry import MODELS
    enc = MODELS.build(
        dict(
            type='SparseEncoder',
            in_channels=5,
            sparse_shape=[41, 64, 64],
            output_channels=32,
            encoder_channels=((16, ), (32, 32, 32)),
            encoder_paddings=((1, ), (1, 1, 1)),
            block_type='basicblock'))
    model = nn.ModuleDict(dict(pts_middle_encoder=enc, head=nn.Linear(2, 2)))
    info = sparse_conv_backend(model)
    n = sum(isinstance(m, MmcvSparseConvolution) for m in enc.modules())
    assert n > 3
    assert info['backend'] == 'mmcv'
    assert info['packages'] == {'mmcv': mmcv.__version__}
    assert info['num_sparse_convs'] == n
    assert info['example'].startswith('pts_middle_encoder.') and 'mmcv.ops.sparse_conv.SubMConv3d' in info['example']
    assert info['import_flag'] is False


def test_spconv_classes_report_spconv_and_version(monkeypatch):
    conv = _fake_spconv(monkeypatch)
    model = nn.ModuleDict(dict(pts_middle_encoder=nn.Sequential(conv.SubMConv3d(4, 4), conv.SubMConv3d(4, 8))))
    info = sparse_conv_backend(model)
    assert info['backend'] == 'spconv 2.3.6'
    assert info['packages'] == {'spconv': '2.3.6'} and info['num_sparse_convs'] == 2
    assert info['example'] == 'pts_middle_encoder.0 (spconv.pytorch.conv.SubMConv3d)'
    # what was built counts, not the import flag: add an mmcv convolution and both show
    model['other'] = MmcvSubMConv3d(4, 4, 3)
    info = sparse_conv_backend(model)
    assert info['backend'] == 'spconv 2.3.6,mmcv' and info['num_sparse_convs'] == 3
    assert info['import_flag'] == IS_SPCONV2_AVAILABLE


def test_no_sparse_conv_is_none():
    info = sparse_conv_backend(nn.Sequential(nn.Conv2d(3, 3, 3), nn.Linear(2, 2)))
    assert info['backend'] is None and info['num_sparse_convs'] == 0 and info['packages'] == {}


def _toy_with_sparse(conv):
    model = ToyModel()
    model.pts_middle_encoder = nn.Sequential(conv)  # not run; only inspected
    return model


def test_hook_logs_and_summarizes_mmcv_backend(tmp_path):
    train_toy(tmp_path, _toy_with_sparse(MmcvSubMConv3d(4, 4, 3)), max_iters=2, interval=1)
    _, log, summary = read_outputs(str(tmp_path))
    assert summary['sparse_conv_backend'] == 'mmcv'
    assert summary['sparse_conv']['packages'] == {'mmcv': mmcv.__version__}
    assert summary['sparse_conv']['num_sparse_convs'] == 1
    assert 'GPUMemoryHook: sparse-conv backend = mmcv (1 sparse convolutions, e.g. pts_middle_encoder.0 ' in log
    # logged at train start, before the first iteration's line
    assert log.index('sparse-conv backend = mmcv') < log.index('Iter(train) [1/2]')


def test_hook_logs_spconv_backend(tmp_path, monkeypatch):
    conv = _fake_spconv(monkeypatch, version='2.3.8')
    runner = train_toy(tmp_path, _toy_with_sparse(conv.SubMConv3d(4, 4)), max_iters=2, interval=1)
    _, log, summary = read_outputs(str(tmp_path))
    assert summary['sparse_conv_backend'] == 'spconv 2.3.8'
    assert 'GPUMemoryHook: sparse-conv backend = spconv 2.3.8' in log
    assert runner.message_hub.get_info('sparse_conv_backend') == 'spconv 2.3.8'


def test_hook_without_sparse_conv_says_none(tmp_path):
    train_toy(tmp_path, ToyModel(), max_iters=2, interval=1)
    _, log, summary = read_outputs(str(tmp_path))
    assert summary['sparse_conv_backend'] is None and summary['sparse_conv']['num_sparse_convs'] == 0
    assert 'GPUMemoryHook: sparse-conv backend = None (0 sparse convolutions;' in log
