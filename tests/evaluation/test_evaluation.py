"""NuScenesMetric (official devkit evaluation) on the synthetic val split: ground truth scores ~1, shifted
ground truth scores ~0."""
import os.path as osp

import mmengine
import numpy as np
import pytest
import torch
from pipeline_helpers import load_cfg


def _gt_as_predictions(val_infos, class_names, shift_x=0.0):
    """One data sample per val info: its valid GT boxes (+ velocity) as LiDAR predictions with score 1."""
    from mmdet3d.structures import LiDARInstance3DBoxes
    label_names = {v: k for k, v in val_infos['metainfo']['categories'].items()}
    out = []
    for info in val_infos['data_list']:
        inst = [i for i in info['instances'] if i['bbox_3d_isvalid'] and i['bbox_label_3d'] >= 0]
        boxes = np.array([list(i['bbox_3d']) + list(i['velocity']) for i in inst], np.float32).reshape(-1, 9)
        boxes[:, 0] += shift_x
        labels = [class_names.index(label_names[i['bbox_label_3d']]) for i in inst]
        out.append(
            dict(
                pred_instances_3d=dict(
                    bboxes_3d=LiDARInstance3DBoxes(boxes, box_dim=9, origin=(0.5, 0.5, 0.5)),
                    scores_3d=torch.ones(len(inst)),
                    labels_3d=torch.tensor(labels, dtype=torch.long)),
                pred_instances=dict(),
                sample_idx=info['sample_idx']))
    return out


def _evaluate(synthetic_root, shift_x, tmp_path):
    from mmdet3d.registry import METRICS
    cfg = load_cfg(synthetic_root)
    metric = METRICS.build(dict(cfg.val_evaluator, jsonfile_prefix=str(tmp_path / f'shift{shift_x}')))
    metric.dataset_meta = dict(classes=cfg.class_names, version='v1.0-mini')
    val_infos = mmengine.load(osp.join(synthetic_root, 'nuscenes_infos_val.pkl'))
    metric.process({}, _gt_as_predictions(val_infos, list(cfg.class_names), shift_x))
    return metric.compute_metrics(metric.results), cfg.class_names


@pytest.mark.parametrize('shift_x', [0.0, 5.0])
def test_ground_truth_as_prediction(synthetic_root, mmdet3d_scope, tmp_path, shift_x):
    metrics, class_names = _evaluate(synthetic_root, shift_x, tmp_path)
    prefix = 'pred_instances_3d_NuScenes/'  # the evaluator adds 'NuScenes metric/' when run by a Runner
    for name in class_names:  # per-class AP reported for every class
        assert f'{prefix}{name}_AP_dist_2.0' in metrics
    if shift_x == 0.0:
        assert metrics[prefix + 'mAP'] >= 0.99 and metrics[prefix + 'NDS'] >= 0.99, metrics
        assert osp.isfile(tmp_path / 'shift0.0' / 'pred_instances_3d' / 'metrics_summary.json')
    else:
        assert metrics[prefix + 'mAP'] < 0.1, metrics
