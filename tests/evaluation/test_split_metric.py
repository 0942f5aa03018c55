"""NuScenesSplitMetric scores the official split it is given (here the synthetic set's training scenes)."""
import logging
import os.path as osp
from types import SimpleNamespace

import mmengine
import pytest
from test_evaluation import _gt_as_predictions


def _build(eval_set, data_root, ann_file, tmp_path):
    import projects.mmdet3d_plugin  # noqa: F401
    from mmdet3d.registry import METRICS
    return METRICS.build(
        dict(
            type='NuScenesSplitMetric',
            eval_set=eval_set,
            data_root=data_root,
            ann_file=ann_file,
            metric='bbox',
            jsonfile_prefix=str(tmp_path / str(eval_set))))


def test_train_split_ground_truth_scores_one_and_shift_scores_zero(synthetic_root, mmdet3d_scope, tmp_path):
    from pipeline_helpers import load_cfg
    class_names = list(load_cfg(synthetic_root).class_names)
    ann_file = osp.join(synthetic_root, 'nuscenes_infos_train.pkl')
    infos = mmengine.load(ann_file)
    for shift, check in ((0.0, lambda m: m >= 0.99), (5.0, lambda m: m < 0.1)):
        metric = _build('mini_train', synthetic_root, ann_file, tmp_path / f's{shift}')
        metric.dataset_meta = dict(classes=class_names, version='v1.0-mini')
        metric.process({}, _gt_as_predictions(infos, class_names, shift_x=shift))
        m = metric.compute_metrics(metric.results)['pred_instances_3d_NuScenes/mAP']
        assert check(m), (shift, m)


def test_train_predictions_do_not_match_the_default_val_split(synthetic_root, mmdet3d_scope, tmp_path):
    from pipeline_helpers import load_cfg
    class_names = list(load_cfg(synthetic_root).class_names)
    ann_file = osp.join(synthetic_root, 'nuscenes_infos_train.pkl')
    metric = _build(None, synthetic_root, ann_file, tmp_path)
    metric.dataset_meta = dict(classes=class_names, version='v1.0-mini')
    metric.process({}, _gt_as_predictions(mmengine.load(ann_file), class_names))
    with pytest.raises(AssertionError, match="Samples in split"):
        metric.compute_metrics(metric.results)


def test_bad_split_is_named(synthetic_root, mmdet3d_scope, tmp_path):
    ann_file = osp.join(synthetic_root, 'nuscenes_infos_train.pkl')
    with pytest.raises(ValueError, match="unknown eval_set='training'"):
        _build('training', synthetic_root, ann_file, tmp_path)
    metric = _build('train', synthetic_root, ann_file, tmp_path)  # a trainval split on a mini set
    metric.version = 'v1.0-mini'  # what compute_metrics reads from dataset_meta
    with pytest.raises(ValueError, match="eval_set='train' is not a split of the dataset version 'v1.0-mini'"):
        metric._evaluate_single('unused.json', classes=['car'])


def test_no_predicted_box_scores_zero_instead_of_crashing(synthetic_root, mmdet3d_scope, tmp_path):
    from pipeline_helpers import load_cfg
    class_names = list(load_cfg(synthetic_root).class_names)
    ann_file = osp.join(synthetic_root, 'nuscenes_infos_val.pkl')
    empty = [
        dict(
            p,
            pred_instances_3d=dict(
                bboxes_3d=p['pred_instances_3d']['bboxes_3d'][:0],
                scores_3d=p['pred_instances_3d']['scores_3d'][:0],
                labels_3d=p['pred_instances_3d']['labels_3d'][:0]))
        for p in _gt_as_predictions(mmengine.load(ann_file), class_names)
    ]
    metric = _build(None, synthetic_root, ann_file, tmp_path)
    metric.dataset_meta = dict(classes=class_names, version='v1.0-mini')
    metric.process({}, empty)
    m = metric.compute_metrics(metric.results)
    assert m['pred_instances_3d_NuScenes/mAP'] == 0.0 and m['pred_instances_3d_NuScenes/NDS'] == 0.0
    assert m['pred_instances_3d_NuScenes/car_AP_dist_0.5'] == 0.0


def test_fit_config_stops_at_the_map_target_on_its_own_metric_key(synthetic_root, mmdet3d_scope, tmp_path):
    """The learning-proof config's EarlyStoppingHook monitors a key its evaluator really produces: GT boxes as
    predictions stop the run, boxes shifted 5 m do not."""
    from mmengine.evaluator import Evaluator
    from mmengine.registry import HOOKS
    from pipeline_helpers import load_cfg
    cfg = load_cfg(synthetic_root, 'projects/configs/demo/cmt_demo_fusion_fit_train.py')
    hook_cfg = next(h for h in cfg.custom_hooks if h['type'] == 'EarlyStoppingHook')
    assert hook_cfg['stopping_threshold'] == 0.9
    infos = mmengine.load(cfg.val_evaluator.ann_file)
    for shift, stops in ((0.0, True), (5.0, False)):
        evaluator = Evaluator(dict(cfg.val_evaluator, jsonfile_prefix=str(tmp_path / f's{shift}')))
        evaluator.dataset_meta = dict(classes=list(cfg.class_names), version='v1.0-mini')
        predictions = _gt_as_predictions(infos, list(cfg.class_names), shift_x=shift)
        evaluator.process(predictions, [{}] * len(predictions))
        metrics = evaluator.evaluate(len(predictions))
        runner = SimpleNamespace(train_loop=SimpleNamespace(stop_training=False), logger=logging.getLogger('test'))
        HOOKS.build(hook_cfg).after_val_epoch(runner, metrics)
        assert runner.train_loop.stop_training is stops, (shift, metrics[hook_cfg['monitor']])
