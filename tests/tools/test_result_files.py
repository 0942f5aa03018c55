"""Results files -> boxes in the sample's LiDAR frame, and the command-line picture tools on the synthetic set."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'projects/configs/demo/cmt_demo_fusion_pillar_r18.py')


@pytest.fixture(scope='module')
def demo_cfg_path(synthetic_root, tmp_path_factory):
    from mmengine.config import Config

    import projects.mmdet3d_plugin  # noqa: F401
    from projects.mmdet3d_plugin.datasets.config_utils import retarget_data_root
    cfg = retarget_data_root(Config.fromfile(DEMO), synthetic_root)
    path = str(tmp_path_factory.mktemp('cfg') / 'demo.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def test_set(demo_cfg_path):
    from mmengine.config import Config

    from projects.mmdet3d_plugin.utils.result_files import build_info_dataset
    return build_info_dataset(Config.fromfile(demo_cfg_path), 'test')


def _global_results(dataset, index, score_fn):
    """The sample's GT boxes (scores ``score_fn(n)``) as a nuScenes results list, through mmdet3d's own conversion
    (the metric's). Returns (view, results, scores)."""
    import torch
    from nuscenes.eval.detection.config import config_factory

    from mmdet3d.evaluation.metrics.nuscenes_metric import lidar_nusc_box_to_global, output_to_nusc_box
    from mmdet3d.structures import LiDARInstance3DBoxes
    from projects.mmdet3d_plugin.utils.result_files import sample_view
    view = sample_view(dataset, index)
    classes = list(dataset.metainfo['classes'])
    eval_cfg = config_factory('detection_cvpr_2019')
    # the metric drops boxes beyond their class's range (ego frame); keep those well inside it
    radius = np.hypot(view['gt_boxes'][:, 0], view['gt_boxes'][:, 1])
    inside = radius < np.array([eval_cfg.class_range[classes[c]] for c in view['gt_labels']]) - 3.0
    view['gt_boxes'], view['gt_labels'] = view['gt_boxes'][inside], view['gt_labels'][inside]
    scores = score_fn(len(view['gt_boxes']))
    boxes = np.concatenate([view['gt_boxes'], np.zeros((len(view['gt_boxes']), 2))], 1)
    det = dict(
        bboxes_3d=LiDARInstance3DBoxes(torch.as_tensor(boxes, dtype=torch.float32), box_dim=9),
        scores_3d=torch.as_tensor(scores, dtype=torch.float32),
        labels_3d=torch.as_tensor(view['gt_labels']))
    nusc_boxes, _ = output_to_nusc_box(det)
    info = dataset.get_data_info(index)
    glob = lidar_nusc_box_to_global(info, nusc_boxes, classes, eval_cfg)
    assert len(glob) == len(nusc_boxes), 'a GT box fell outside the class range filter'
    return view, [
        dict(
            sample_token=view['token'],
            translation=b.center.tolist(),
            size=b.wlh.tolist(),
            rotation=b.orientation.elements.tolist(),
            velocity=[0.0, 0.0],
            detection_name=classes[b.label],
            detection_score=float(b.score),
            attribute_name='') for b in glob
    ], scores


def test_nusc_json_boxes_come_back_in_the_lidar_frame(test_set):
    from projects.mmdet3d_plugin.utils.result_files import nusc_boxes_to_lidar
    rng = np.random.default_rng()
    index = int(rng.integers(len(test_set)))
    view, results, scores = _global_results(test_set, index, lambda n: rng.uniform(0.1, 1.0, n))
    assert len(results) > 0
    boxes, got_scores, labels = nusc_boxes_to_lidar(results, view['ego2global'], view['lidar2ego'], view['classes'])
    gt = view['gt_boxes']
    np.testing.assert_allclose(boxes[:, :6], gt[:, :6], atol=1e-3)
    dyaw = (boxes[:, 6] - gt[:, 6] + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dyaw, 0, atol=1e-4)
    np.testing.assert_allclose(got_scores, scores, atol=1e-6)
    np.testing.assert_array_equal(labels, view['gt_labels'])


def test_visualize_results_cli_draws_json_and_pkl(test_set, demo_cfg_path, tmp_path, capsys):
    from tools.misc.visualize_results import main
    view, results, _ = _global_results(test_set, 0, lambda n: np.full(n, 0.9))
    js = tmp_path / 'results_nusc.json'
    js.write_text(json.dumps(dict(meta={}, results={view['token']: results})))
    assert main([demo_cfg_path, '--result', str(js), '--show-dir', str(tmp_path / 'js'), '--num', '2']) == 0
    out = capsys.readouterr().out
    assert f'{len(results)} of {len(results)} predictions drawn' in out
    assert 'no entry in the results' in out  # sample 1 has none in this file
    assert osp.isfile(tmp_path / 'js' / f'bev_0000_{view["token"][:8]}.png')
    assert osp.isfile(tmp_path / 'js' / f'CAM_FRONT_0000_{view["token"][:8]}.png')

    import torch

    from mmdet3d.structures import LiDARInstance3DBoxes
    boxes = torch.as_tensor(view['gt_boxes'], dtype=torch.float32)
    dump = [
        dict(
            token=view['token'],
            sample_idx=view['sample_idx'],
            pred_instances_3d=dict(
                bboxes_3d=LiDARInstance3DBoxes(boxes),
                scores_3d=torch.linspace(0, 1, len(boxes)),
                labels_3d=torch.as_tensor(view['gt_labels'])))
    ]
    pkl = tmp_path / 'results.pkl'
    pkl.write_bytes(pickle.dumps(dump))
    assert main(
        [demo_cfg_path, '--result',
         str(pkl), '--show-dir',
         str(tmp_path / 'pkl'), '--num', '1', '--score-thr', '0.5']) == 0
    expected = int((np.linspace(0, 1, len(boxes)) >= 0.5).sum())
    assert f'{expected} of {len(boxes)} predictions drawn' in capsys.readouterr().out


def test_visualize_results_names_a_bad_file(demo_cfg_path, tmp_path, capsys):
    from tools.misc.visualize_results import main
    bad = tmp_path / 'x.json'
    bad.write_text('[1, 2]')
    assert main([demo_cfg_path, '--result', str(bad), '--show-dir', str(tmp_path)]) == 2
    assert 'nuScenes results JSON' in capsys.readouterr().err
    assert main([demo_cfg_path, '--result', str(tmp_path / 'gone.pkl'), '--show-dir', str(tmp_path)]) == 2
    assert 'gone.pkl' in capsys.readouterr().err


def test_browse_dataset_writes_bev_and_camera_tiles(demo_cfg_path, tmp_path, capsys):
    import cv2
    from mmengine.config import Config

    from tools.misc.browse_dataset import main
    assert main([demo_cfg_path, '--output-dir', str(tmp_path), '--num', '1']) == 0
    bev = sorted(tmp_path.glob('*_bev.png'))
    cams = sorted(tmp_path.glob('*_cameras.png'))
    assert len(bev) == 1 and len(cams) == 1, capsys.readouterr().out
    h, w = Config.fromfile(demo_cfg_path).ida_aug_conf['final_dim']
    assert cv2.imread(str(cams[0])).shape == (2 * h, 3 * w, 3)
    assert 'GT boxes' in capsys.readouterr().out
