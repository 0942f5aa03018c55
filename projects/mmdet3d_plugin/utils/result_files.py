"""Read what the pictures show: a dataset sample's LiDAR points, GT boxes and cameras, and a results file's
predicted boxes for that sample, all in the sample's LiDAR frame.

Results files:
- nuScenes results JSON (``{'results': {sample_token: [box, ...]}, 'meta': ...}``, the file NuScenesMetric writes to
  ``<jsonfile_prefix>/pred_instances_3d/results_nusc.json``): boxes in the global frame with nuScenes sizes
  (w, l, h), a gravity centre and a rotation quaternion; moved into the LiDAR frame here with the sample's
  ``ego2global`` and ``lidar2ego`` from the info file (the inverse of mmdet3d's ``output_to_nusc_box`` +
  ``lidar_nusc_box_to_global``).
- a pickle of predictions (mmengine's ``DumpResults``, e.g. ``tools/test.py`` with a DumpResults evaluator): a list
  of dicts with ``pred_instances_3d`` = {bboxes_3d, scores_3d, labels_3d} in the LiDAR frame and ``token`` or
  ``sample_idx`` naming the sample.
"""
import json
import os.path as osp
from typing import Dict, List, Optional

import numpy as np


class ResultFileError(ValueError):
    """A results file that cannot be read, named with the expected form."""


def build_info_dataset(cfg, split: str = 'test'):
    """The config's ``{split}_dataloader`` dataset (CBGS wrappers removed) without its pipeline, to read infos."""
    from mmengine.registry import init_default_scope

    from mmdet3d.registry import DATASETS
    init_default_scope('mmdet3d')
    loader = cfg.get(f'{split}_dataloader')
    if loader is None:
        raise KeyError(f'the config has no {split}_dataloader')
    ds_cfg = loader['dataset'].copy()
    while 'dataset' in ds_cfg and ds_cfg.get('type') in ('CBGSDataset', 'ClassBalancedDataset', 'RepeatDataset'):
        ds_cfg = ds_cfg['dataset'].copy()
    ds_cfg['pipeline'] = []
    return DATASETS.build(ds_cfg)


def lidar2img_of(cam_info: dict) -> np.ndarray:
    """(4, 4) lidar2img = cam2img @ lidar2cam of one camera of a parsed info."""
    from ..datasets.transforms.camera_geometry import to_4x4
    if 'lidar2img' in cam_info:
        return to_4x4(cam_info['lidar2img'])
    return to_4x4(cam_info['cam2img']) @ to_4x4(cam_info['lidar2cam'])


def sample_view(dataset, index: int) -> dict:
    """Everything the pictures need of sample ``index`` of a (pipeline-free) mmdet3d dataset.

    Returns dict(token, sample_idx, points (N, F) float32 (the key frame only), gt_boxes (M, 7) LiDAR boxes,
    gt_labels (M,), classes, cams {name: dict(img_path, lidar2img (4, 4))}, ego2global (4, 4), lidar2ego (4, 4)).
    """
    info = dataset.get_data_info(index)
    lidar = info['lidar_points']
    path = lidar['lidar_path']
    num_feats = int(lidar.get('num_pts_feats', 5))
    if not osp.isfile(path):
        raise FileNotFoundError(f'LiDAR file {path!r} of sample {info.get("token")} does not exist')
    points = np.fromfile(path, dtype=np.float32)
    points = points[:len(points) // num_feats * num_feats].reshape(-1, num_feats)
    ann = info.get('eval_ann_info') or info.get('ann_info')
    if ann is None and hasattr(dataset, 'parse_ann_info'):
        ann = dataset.parse_ann_info(info)
    gt_boxes, gt_labels = np.zeros((0, 7)), np.zeros(0, int)
    if ann is not None and 'gt_bboxes_3d' in ann:
        boxes = ann['gt_bboxes_3d']
        gt_boxes = (boxes.tensor.numpy() if hasattr(boxes, 'tensor') else np.asarray(boxes))[:, :7]
        gt_labels = np.asarray(ann['gt_labels_3d'])
        keep = gt_labels >= 0
        gt_boxes, gt_labels = gt_boxes[keep], gt_labels[keep]
    cams = {
        name: dict(img_path=cam['img_path'], lidar2img=lidar2img_of(cam))
        for name, cam in (info.get('images') or {}).items() if 'img_path' in cam and 'cam2img' in cam
    }
    return dict(
        token=info.get('token'),
        sample_idx=info.get('sample_idx', index),
        points=points,
        gt_boxes=gt_boxes,
        gt_labels=gt_labels,
        classes=list(dataset.metainfo['classes']),
        cams=cams,
        ego2global=np.asarray(info['ego2global'], np.float64),
        lidar2ego=np.asarray(lidar['lidar2ego'], np.float64))


def nusc_boxes_to_lidar(boxes: List[dict], ego2global: np.ndarray, lidar2ego: np.ndarray, classes: List[str]):
    """nuScenes result boxes (global frame) -> (M, 7) LiDAR boxes (x, y, z_bottom, l, w, h, yaw), scores (M,),
    labels (M,) (index into ``classes``; -1 for a name not in it)."""
    from pyquaternion import Quaternion
    global2lidar = np.linalg.inv(ego2global @ lidar2ego)
    out, scores, labels = [], [], []
    for i, box in enumerate(boxes):
        try:
            centre = np.asarray(box['translation'], np.float64)
            w, l, h = (float(v) for v in box['size'])
            rot = Quaternion(box['rotation']).rotation_matrix
            score = float(box['detection_score'])
            name = box['detection_name']
        except (KeyError, TypeError, ValueError) as e:
            raise ResultFileError(f'result box {i} is not a nuScenes detection (needs translation [3], size [w, l, '
                                  f'h], rotation [w, x, y, z], detection_score, detection_name): {e!r}') from e
        c = global2lidar[:3, :3] @ centre + global2lidar[:3, 3]
        r = global2lidar[:3, :3] @ rot
        out.append([c[0], c[1], c[2] - h / 2, l, w, h, np.arctan2(r[1, 0], r[0, 0])])
        scores.append(score)
        labels.append(classes.index(name) if name in classes else -1)
    return np.asarray(out, np.float64).reshape(-1, 7), np.asarray(scores), np.asarray(labels, int)


def load_results(path: str) -> Dict:
    """Read a results file -> dict(kind='nusc_json' | 'pkl', by_token {token: entry}, by_idx {sample_idx: entry});
    JSON entries are lists of nuScenes boxes, pickle entries dicts with boxes (M, 7), scores (M,), labels (M,)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'results file {path!r} does not exist')
    if path.endswith('.json'):
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get('results'), dict):
            raise ResultFileError(f'{path}: expected a nuScenes results JSON {{"meta": ..., "results": '
                                  f'{{sample_token: [box, ...]}}}} (NuScenesMetric with jsonfile_prefix writes one)')
        return dict(kind='nusc_json', by_token=data['results'], by_idx={})
    if path.endswith(('.pkl', '.pickle')):
        import mmengine
        data = mmengine.load(path)
        if not isinstance(data, (list, tuple)) or not all(isinstance(d, dict) for d in data):
            raise ResultFileError(f'{path}: expected a list of dicts (one per sample, mmengine DumpResults), got '
                                  f'{type(data).__name__}')
        by_token, by_idx = {}, {}
        for i, d in enumerate(data):
            pred = d.get('pred_instances_3d')
            if pred is None or 'bboxes_3d' not in pred:
                raise ResultFileError(f'{path}: entry {i} has no pred_instances_3d.bboxes_3d (keys {sorted(d)})')
            boxes = pred['bboxes_3d']
            boxes = boxes.tensor if hasattr(boxes, 'tensor') else boxes
            entry = dict(
                boxes=np.asarray(boxes.cpu() if hasattr(boxes, 'cpu') else boxes, np.float64)[:, :7],
                scores=np.asarray(_cpu(pred.get('scores_3d', np.ones(len(boxes)))), np.float64),
                labels=np.asarray(_cpu(pred.get('labels_3d', np.zeros(len(boxes)))), int))
            if d.get('token') is not None:
                by_token[d['token']] = entry
            if d.get('sample_idx') is not None:
                by_idx[int(d['sample_idx'])] = entry
        return dict(kind='pkl', by_token=by_token, by_idx=by_idx)
    raise ResultFileError(f'{path}: unknown results file type; expected .json (nuScenes results) or .pkl '
                          '(mmengine DumpResults)')


def _cpu(x):
    return x.cpu().numpy() if hasattr(x, 'cpu') else x


def predictions_for(results: Dict, view: dict, score_thr: float = 0.0) -> Optional[dict]:
    """The predictions of ``view``'s sample in its LiDAR frame with score >= ``score_thr``:
    dict(boxes (M, 7), scores (M,), labels (M,), total (before the threshold), max_score), or None when the
    results file has no entry for the sample."""
    token, idx = view['token'], view['sample_idx']
    if token in results['by_token']:
        entry = results['by_token'][token]
    elif idx in results['by_idx']:
        entry = results['by_idx'][idx]
    else:
        return None
    if results['kind'] == 'nusc_json':
        boxes, scores, labels = nusc_boxes_to_lidar(entry, view['ego2global'], view['lidar2ego'], view['classes'])
    else:
        boxes, scores, labels = entry['boxes'], entry['scores'], entry['labels']
    keep = scores >= score_thr
    return dict(
        boxes=boxes[keep],
        scores=scores[keep],
        labels=labels[keep],
        total=len(scores),
        max_score=float(scores.max()) if len(scores) else None)
