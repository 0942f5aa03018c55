"""CMT's "15e + 5e" GT-paste switch (``ObjectSampleSwitchHook``): on before the switch, off from it on, also when
a run is resumed past the switch, inside CBGS-wrapped datasets and in persistent dataloader workers."""
import copy
from types import SimpleNamespace

import torch
from mmengine.logging import MMLogger
from pipeline_helpers import load_cfg
from torch.utils.data import DataLoader, Subset


def _paste_dataset(synthetic_root):
    """The CBGS train set with its pipeline cut after UnifiedObjectSample (loading + GT paste only)."""
    from mmdet3d.registry import DATASETS
    cfg = load_cfg(synthetic_root)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    pipe = ds_cfg.dataset.pipeline
    cut = next(i for i, t in enumerate(pipe) if t['type'] == 'UnifiedObjectSample')
    ds_cfg.dataset.pipeline = pipe[:cut + 1]
    ds_cfg.dataset.filter_empty_gt = False  # the output is not packed: skip the packed-sample check
    return DATASETS.build(ds_cfg)


def _runner(epoch, loader):
    return SimpleNamespace(epoch=epoch, logger=MMLogger.get_current_instance(), train_dataloader=loader)


def _box_counts(batch):
    """(boxes after the pipeline, boxes in the annotation) per sample: GT paste adds boxes."""
    return [(len(r['gt_bboxes_3d']), len(r['ann_info']['gt_bboxes_3d'])) for r in batch]


def test_switch_follows_the_epoch_also_after_resume(synthetic_root, mmdet3d_scope):
    from mmdet3d.engine.hooks import DisableObjectSampleHook
    from projects.mmdet3d_plugin.engine import ObjectSampleSwitchHook, find_object_samples
    cbgs = _paste_dataset(synthetic_root)
    paste = find_object_samples(cbgs)
    assert len(paste) == 1 and type(paste[0]).__name__ == 'UnifiedObjectSample'
    paste = paste[0]
    loader = SimpleNamespace(dataset=cbgs, persistent_workers=False)
    hook = ObjectSampleSwitchHook(disable_after_epoch=15)
    calls = []
    sample_all = paste.db_sampler.sample_all
    paste.db_sampler.sample_all = lambda *a, **k: calls.append(1) or sample_all(*a, **k)

    for epoch, off in [(0, False), (14, False), (15, True), (16, True), (19, True)]:
        hook.before_train_epoch(_runner(epoch, loader))
        assert paste.disabled is off, epoch
        n = len(calls)
        cbgs[0]
        assert (len(calls) == n) is off, epoch  # the database sampler runs only while paste is on
    # a fresh process resumed at epoch 17: the transform is built enabled, the hook turns it off
    paste.disabled = False
    hook.before_train_epoch(_runner(17, loader))
    assert paste.disabled
    n = len(calls)
    cbgs[0]
    assert len(calls) == n
    # and resuming *before* the switch (e.g. from an epoch-10 checkpoint in a process where it was off) turns it on
    hook.before_train_epoch(_runner(10, loader))
    assert not paste.disabled

    # mmdet3d's hook, for comparison: a run resumed at epoch 17 keeps pasting (the bug this hook fixes)
    paste.disabled = False
    DisableObjectSampleHook(disable_after_epoch=15).before_train_epoch(
        SimpleNamespace(
            epoch=17,
            model=torch.nn.Linear(1, 1),
            logger=MMLogger.get_current_instance(),
            train_dataloader=SimpleNamespace(dataset=cbgs, persistent_workers=False)))
    assert not paste.disabled


def test_persistent_workers_see_the_switch(synthetic_root, mmdet3d_scope):
    """Workers hold copies of the pipeline: the hook must restart persistent workers when the state changes."""
    from projects.mmdet3d_plugin.engine import ObjectSampleSwitchHook
    cbgs = _paste_dataset(synthetic_root)
    loader = DataLoader(
        Subset(cbgs, [0, 1]),
        batch_size=1,
        num_workers=1,
        persistent_workers=True,
        multiprocessing_context='fork',
        collate_fn=_box_counts)
    hook = ObjectSampleSwitchHook(disable_after_epoch=2)

    def epoch(e):
        hook.before_train_epoch(_runner(e, loader))
        return [c for batch in loader for c in batch]

    assert all(n > n_ori for n, n_ori in epoch(1))  # pasted (every synthetic sample gets objects)
    assert all(n == n_ori for n, n_ori in epoch(2))  # switched off in the worker too
    assert all(n == n_ori for n, n_ori in epoch(3))
    # resumed at epoch 3 with a fresh loader and a pipeline that starts enabled
    cbgs2 = _paste_dataset(synthetic_root)
    loader2 = DataLoader(
        Subset(cbgs2, [0, 1]),
        batch_size=1,
        num_workers=1,
        persistent_workers=True,
        multiprocessing_context='fork',
        collate_fn=_box_counts)
    hook.before_train_epoch(_runner(3, loader2))
    assert all(n == n_ori for batch in loader2 for n, n_ori in batch)


def test_bad_threshold_is_rejected():
    import pytest

    from projects.mmdet3d_plugin.engine import ObjectSampleSwitchHook
    with pytest.raises(ValueError, match='disable_after_epoch'):
        ObjectSampleSwitchHook(disable_after_epoch=-1)


def test_configs_with_gt_paste_switch_it_off_at_15():
    """Every config whose train pipeline pastes GT objects registers the switch hook (full configs: epoch 15 of 20,
    CMT's 15e + 5e; shortened schedules such as the full-size proof: the same last quarter, rounded)."""
    import glob
    import os.path as osp

    from mmengine.config import Config
    from pipeline_helpers import ROOT
    for path in sorted(glob.glob(osp.join(ROOT, 'projects/configs/**/*.py'), recursive=True)):
        cfg = Config.fromfile(path)
        pipeline = cfg.train_dataloader.dataset.get('dataset', cfg.train_dataloader.dataset).pipeline
        pastes = any(t['type'] in ('ObjectSample', 'UnifiedObjectSample') for t in pipeline)
        hooks = [h for h in cfg.get('custom_hooks', []) if h['type'] == 'ObjectSampleSwitchHook']
        assert not any(h['type'] == 'DisableObjectSampleHook' for h in cfg.get('custom_hooks', [])), path
        assert len(hooks) == int(pastes), path
        if pastes and '/demo/' not in path:
            max_epochs = cfg.train_cfg.get('max_epochs', cfg.get('max_epochs'))  # iteration loops: the file's
            assert hooks[0]['disable_after_epoch'] == (15 if max_epochs == 20 else round(0.75 * max_epochs)), path
