"""The synthetic set is a valid nuScenes v1.0 dataset: the official devkit opens it and its contents agree."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
from nuscenes.utils import splits
from nuscenes.utils.geometry_utils import points_in_box
from pyquaternion import Quaternion

from projects.mmdet3d_plugin.datasets.nuscenes_layout import CAMERA_NAMES, CLASS_CATEGORY
from projects.mmdet3d_plugin.datasets.synthetic import TABLES, generate_synthetic_nuscenes
from projects.mmdet3d_plugin.datasets.synthetic.build import MARKER, build_synthetic_dataset

NUM_SCENES, SAMPLES_PER_SCENE = 2, 4  # as built by conftest.synthetic_root


def test_devkit_opens_all_tables_and_official_splits(nusc):
    for table in TABLES:
        assert len(getattr(nusc, table)) > 0, table
    names = [s['name'] for s in nusc.scene]
    assert names[0] in splits.mini_train and names[1] in splits.mini_val
    assert len(nusc.sample) == NUM_SCENES * SAMPLES_PER_SCENE
    cats = {a['category_name'] for a in nusc.sample_annotation}
    assert cats == set(CLASS_CATEGORY.values())
    for sample in nusc.sample:
        assert set(sample['data']) == {'LIDAR_TOP', *CAMERA_NAMES}
        for token in sample['data'].values():
            assert osp.isfile(nusc.get_sample_data_path(token))
        # 9 sweeps between keyframes (20 Hz) chained through prev/next
        sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
        if sample['prev']:
            n_prev = 0
            while True:
                sd = nusc.get('sample_data', sd['prev'])
                if sd['is_key_frame']:
                    break
                n_prev += 1
            assert n_prev == 9


def test_annotations_agree_with_points_and_motion(nusc):
    """num_lidar_pts = devkit's count of LiDAR points in the box; other points lie on the ground; velocities
    from consecutive annotations are constant (instances move at constant velocity)."""
    rng = np.random.default_rng(0)
    for sample in [nusc.sample[i] for i in rng.choice(len(nusc.sample), 3, replace=False)]:
        lidar_token = sample['data']['LIDAR_TOP']
        path, boxes, _ = nusc.get_sample_data(lidar_token)
        pts = np.fromfile(path, np.float32).reshape(-1, 5)
        assert np.all(pts[:, 4] >= 0) and np.all(pts[:, 4] < 32) and np.all(np.isfinite(pts))
        xyz = pts[:, :3].T.astype(np.float64)
        in_any = np.zeros(xyz.shape[1], bool)
        for box in boxes:
            ann = nusc.get('sample_annotation', box.token)
            inside = points_in_box(box, xyz, wlh_factor=1.05)
            in_any |= inside
            assert abs(int(inside.sum()) - ann['num_lidar_pts']) <= 2 + 0.05 * ann['num_lidar_pts'], ann
        sd = nusc.get('sample_data', lidar_token)
        cs = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
        z_ego = (Quaternion(cs['rotation']).rotation_matrix @ xyz)[2] + cs['translation'][2]
        on_ground = np.abs(z_ego) < 0.05
        assert np.mean(in_any | on_ground) > 0.995
        assert in_any.sum() > 200
    for inst in nusc.instance[:10]:
        tokens, tok = [], inst['first_annotation_token']
        while tok:
            tokens.append(tok)
            tok = nusc.get('sample_annotation', tok)['next']
        assert len(tokens) == SAMPLES_PER_SCENE
        vel = np.array([nusc.box_velocity(t) for t in tokens])
        np.testing.assert_allclose(vel, np.repeat(vel[:1], len(vel), 0), atol=1e-3)


def _tree_digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(osp.join(dirpath, name), 'rb') as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_deterministic_per_seed(tmp_path):
    kw = dict(num_scenes=1, samples_per_scene=2, sweeps_per_keyframe=1, azimuth_steps=256, progress=False)
    generate_synthetic_nuscenes(str(tmp_path / 'a'), seed=5, **kw)
    generate_synthetic_nuscenes(str(tmp_path / 'b'), seed=5, **kw)
    generate_synthetic_nuscenes(str(tmp_path / 'c'), seed=6, **kw)
    assert _tree_digest(tmp_path / 'a') == _tree_digest(tmp_path / 'b')
    assert _tree_digest(tmp_path / 'a') != _tree_digest(tmp_path / 'c')


def test_build_is_idempotent_and_refuses_foreign_dirs(tmp_path):
    out = str(tmp_path / 'set')
    kw = dict(
        num_scenes=1, samples_per_scene=2, sweeps_per_keyframe=1, azimuth_steps=256, with_infos=False, progress=False)
    first = build_synthetic_dataset(out, **kw)
    stamp = os.stat(osp.join(out, 'v1.0-mini', 'sample.json')).st_mtime_ns
    assert build_synthetic_dataset(out, **kw) == first  # complete: no-op
    assert os.stat(osp.join(out, 'v1.0-mini', 'sample.json')).st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match='different arguments'):
        build_synthetic_dataset(out, **dict(kw, seed=1))
    os.remove(osp.join(out, MARKER))  # a partial set
    with pytest.raises(FileExistsError, match='--overwrite'):
        build_synthetic_dataset(out, **kw)
    (tmp_path / 'set' / 'keep.txt').write_text('user file')
    done = build_synthetic_dataset(out, **dict(kw, seed=1), overwrite=True)
    assert done['args']['seed'] == 1 and osp.isfile(osp.join(out, 'keep.txt'))
    with open(osp.join(out, MARKER)) as f:
        assert json.load(f)['args']['seed'] == 1


def test_split_mapping_errors():
    from projects.mmdet3d_plugin.datasets.synthetic import scene_names
    train, val = scene_names(10, 'v1.0-mini')
    assert train == list(splits.mini_train) and val == list(splits.mini_val)
    train, val = scene_names(12, 'v1.0-trainval')
    assert set(train) <= set(splits.train) and set(val) <= set(splits.val) and len(val) == 2
    with pytest.raises(ValueError, match='v1.0-trainval'):
        scene_names(11, 'v1.0-mini')
