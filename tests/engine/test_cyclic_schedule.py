"""The four full-size configs' optimizer and param schedulers reproduce CMT's mmcv 1.x cyclic schedule for every
parameter group (docs/quirks.md #12).

CMT (junjie18/CMT, projects/configs/*/cmt_*.py) trains with
``lr_config=dict(policy='cyclic', target_ratio=(peak, 1e-4), cyclic_times=1, step_ratio_up=0.4)`` and
``momentum_config=dict(policy='cyclic', target_ratio=(0.85 / 0.95, 1), cyclic_times=1, step_ratio_up=0.4)``, and
the optimizer's ``paramwise_cfg`` gives img_backbone lr_mult 0.01 (decay_mult 5) and img_neck lr_mult 0.1.
mmcv's CyclicLrUpdaterHook / CyclicMomentumUpdaterHook anneal *each group's own* base value (``initial_lr`` =
lr x lr_mult, AdamW beta1) by ``annealing_cos`` over iterations; that formula is recomputed here in float64,
independently of mmengine, and compared with what the configs' schedulers set on the real model's groups.
"""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS

import projects.mmdet3d_plugin  # noqa: F401  (registers the modules)
from mmdet3d.registry import MODELS
from mmdet3d.utils import register_all_modules

register_all_modules(init_default_scope=True)
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# CMT's values, read from its configs (not from ours): base lr, cyclic peak ratio, lr_mult per name key.
IMG_MULTS = {'img_backbone': 0.01, 'img_neck': 0.1}
CMT = {
    'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py': (1.4e-4, 6, IMG_MULTS),
    'projects/configs/fusion/cmt_voxel0075_vov_1600x640_cbgs.py': (1e-4, 8, IMG_MULTS),
    'projects/configs/lidar/cmt_lidar_voxel0075_cbgs.py': (1e-4, 6, {}),
    'projects/configs/camera/cmt_camera_vov_1600x640_cbgs.py': (1e-4, 8, IMG_MULTS),
}
EPOCHS, EPOCH_LEN = 20, 50  # 1000 iterations; the 40% point is iteration 400
BETA1 = 0.9


def annealing_cos(start: float, end: float, factor: float) -> float:
    """mmcv 1.x ``annealing_cos``: cosine from ``start`` (factor 0) to ``end`` (factor 1)."""
    return end + 0.5 * (start - end) * (math.cos(math.pi * factor) + 1)


def mmcv_cyclic(base: float, it: int, max_iters: int, target_ratio, step_ratio_up: float = 0.4) -> float:
    """CyclicLrUpdaterHook / CyclicMomentumUpdaterHook value at iteration ``it`` (cyclic_times=1, gamma=1)."""
    up = int(step_ratio_up * max_iters)
    phases = [(0, up, 1.0, target_ratio[0]), (up, max_iters, target_ratio[0], target_ratio[1])]
    for start, end, r0, r1 in phases:
        if start <= it < end:
            return annealing_cos(base * r0, base * r1, (it - start) / (end - start))
    raise ValueError(f'iteration {it} outside [0, {max_iters})')


def lr_mult_of(name: str, mults: dict) -> float:
    """mmcv's DefaultOptimizerConstructor custom_keys: the first (sorted) key contained in the name."""
    for key in sorted(mults, reverse=True):
        if key in name:
            return mults[key]
    return 1.0


def build_optim(path: str):
    """(config, model, optimizer wrapper) as mmengine's Runner builds them, on CPU."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    model = MODELS.build(cfg.model)
    ow_cfg = cfg.optim_wrapper.copy()
    # AmpOptimWrapper needs a GPU; the wrapper type does not change the param groups or the schedule.
    ow_cfg.type = 'OptimWrapper'
    ow_cfg.pop('dtype', None)
    ow_cfg.pop('loss_scale', None)
    assert cfg.train_cfg.max_epochs == EPOCHS
    return cfg, model, build_optim_wrapper(model, ow_cfg)


def build_schedulers(cfg, optim_wrapper) -> list:
    """The config's param schedulers as Runner.build_param_scheduler builds them (``epoch_length`` given)."""
    schedulers = []
    for sched in cfg.param_scheduler:
        sched = dict(sched)
        sched.setdefault('end', EPOCHS)
        schedulers.append(
            PARAM_SCHEDULERS.build(sched, default_args=dict(optimizer=optim_wrapper, epoch_length=EPOCH_LEN)))
    return schedulers


@pytest.mark.parametrize('path', list(CMT))
def test_every_group_follows_cmt_cyclic_schedule(path):
    base_lr, peak, mults = CMT[path]
    cfg, model, optim_wrapper = build_optim(path)
    groups = optim_wrapper.optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    group_mult = [lr_mult_of(names[id(g['params'][0])], mults) for g in groups]
    # every parameter is in exactly one group, every lr_mult of CMT's config occurs, each group's lr = lr x lr_mult
    assert sum(len(g['params']) for g in groups) == len(names)
    assert set(group_mult) == {1.0, *mults.values()}
    assert [g['lr'] for g in groups] == pytest.approx([base_lr * m for m in group_mult], rel=1e-12)
    # img_backbone's decay_mult 5 (CMT) is applied too
    for g, m in zip(groups, group_mult):
        if m == 0.01 and g['params'][0].ndim > 1:
            assert g['weight_decay'] == pytest.approx(0.05)
    # mmengine makes one group per parameter and its schedulers treat every group alike from its own
    # initial_lr; stepping one representative group per distinct (lr, weight_decay) keeps the test fast
    reps = {}
    for g, m in zip(groups, group_mult):
        reps.setdefault((g['lr'], g['weight_decay']), (g, m))
    groups[:] = [g for g, _ in reps.values()]
    group_mult = [m for _, m in reps.values()]
    schedulers = build_schedulers(cfg, optim_wrapper)

    max_iters = EPOCHS * EPOCH_LEN
    up = int(0.4 * max_iters)
    lr_got = np.empty((max_iters, len(groups)))
    beta_got = np.empty((max_iters, len(groups)))
    for it in range(max_iters):
        lr_got[it] = [g['lr'] for g in groups]
        beta_got[it] = [g['betas'][0] for g in groups]
        for sched in schedulers:  # ParamSchedulerHook.after_train_iter (converted schedulers are iter-based)
            sched.step()
    # the whole trajectory: mmengine's recursive cosine starts the down phase from the up phase's last value
    # (iteration up - 1) instead of the exact peak, a relative difference of ~(pi / up)^2 / 4 = 1.5e-5 here
    ratio = np.array([mmcv_cyclic(1.0, it, max_iters, (peak, 1e-4)) for it in range(max_iters)])
    beta_want = np.array([mmcv_cyclic(BETA1, it, max_iters, (0.85 / 0.95, 1.0)) for it in range(max_iters)])
    mult = np.array(group_mult)
    np.testing.assert_allclose(lr_got, ratio[:, None] * base_lr * mult[None], rtol=1e-4)
    np.testing.assert_allclose(beta_got, np.broadcast_to(beta_want[:, None], beta_got.shape), rtol=1e-5)
    # the named points against hand-written values: 0%, 40% (peak), 100% (1/600 of the down phase before its end)
    last = 1e-4 + 0.5 * (peak - 1e-4) * (1 + math.cos(math.pi * 599 / 600))
    for it, frac, beta in [(0, 1.0, BETA1), (up, peak, BETA1 * 0.85 / 0.95), (max_iters - 1, last, BETA1)]:
        np.testing.assert_allclose(lr_got[it], base_lr * mult * frac, rtol=1e-4, err_msg=f'lr at iteration {it}')
        np.testing.assert_allclose(beta_got[it], beta, atol=1e-5, err_msg=f'beta1 at iteration {it}')
    assert (lr_got[-1] < base_lr * mult * 2e-4).all()
    for m in set(group_mult):  # e.g. fusion R50: img_backbone peaks at 8.4e-6, img_neck 8.4e-5, the rest 8.4e-4
        assert lr_got[up, mult == m].max() == pytest.approx(base_lr * m * peak, rel=1e-4)


def test_absolute_eta_min_would_give_every_group_the_head_peak():
    """The bug this guards against: mmengine's absolute ``eta_min`` is the same number for every group."""
    model = torch.nn.ModuleDict(dict(img_backbone=torch.nn.Linear(2, 2), pts_bbox_head=torch.nn.Linear(2, 2)))
    optim_wrapper = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type='AdamW', lr=1e-4),
            paramwise_cfg=dict(custom_keys=dict(img_backbone=dict(lr_mult=0.01)))))
    sched = PARAM_SCHEDULERS.build(
        dict(type='CosineAnnealingLR', T_max=4, eta_min=6e-4, begin=0, end=5, by_epoch=False),
        default_args=dict(optimizer=optim_wrapper))
    for _ in range(4):
        sched.step()
    groups = optim_wrapper.optimizer.param_groups  # one per parameter: 2 of img_backbone, 2 of the head
    assert [g['lr'] for g in groups] == pytest.approx([6e-4] * 4)
    assert sorted(g['initial_lr'] for g in groups) == pytest.approx([1e-6, 1e-6, 1e-4, 1e-4])
