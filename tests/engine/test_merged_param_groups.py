"""MergedParamGroupsConstructor against mmengine's DefaultOptimWrapperConstructor: same settings per parameter,
same AdamW update, far fewer groups."""
import copy

import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

import projects.mmdet3d_plugin  # noqa: F401  (registers the constructor)

PARAMWISE = dict(custom_keys={'img_backbone': dict(lr_mult=0.01, decay_mult=5), 'img_neck': dict(lr_mult=0.1)})


def _model():
    return nn.ModuleDict(
        dict(
            img_backbone=nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 8)),
            img_neck=nn.Linear(8, 8),
            head=nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 3))))


def _build(model, constructor):
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01), paramwise_cfg=PARAMWISE)
    if constructor:
        cfg['constructor'] = constructor
    return build_optim_wrapper(model, cfg)


def _settings_by_param(optim_wrapper):
    return {
        id(p): {
            k: v
            for k, v in g.items() if k != 'params'
        }
        for g in optim_wrapper.optimizer.param_groups
        for p in g['params']
    }


def test_same_settings_and_update_with_fewer_groups():
    torch.manual_seed(0)
    ref_model = _model()
    model = copy.deepcopy(ref_model)
    ref = _build(ref_model, None)
    merged = _build(model, 'MergedParamGroupsConstructor')
    n_params = len(list(model.parameters()))
    assert len(ref.optimizer.param_groups) == n_params  # mmengine: one group per parameter
    # backbone weights (decay x 5) and biases/BN (decay x 5 too: decay_mult covers all), neck, the rest
    assert len(merged.optimizer.param_groups) == 3
    assert sum(len(g['params']) for g in merged.optimizer.param_groups) == n_params
    ref_settings = _settings_by_param(ref)
    got = _settings_by_param(merged)
    for (name, p), p_ref in zip(model.named_parameters(), ref_model.parameters()):
        assert got[id(p)] == ref_settings[id(p_ref)], name
    x = torch.randn(16, 4)
    for m, ow in ((ref_model, ref), (model, merged)):
        for _ in range(3):
            out = m['head'](m['img_neck'](m['img_backbone'](x)))
            ow.update_params(out.square().mean())
    for p, p_ref in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-6, atol=1e-7)
