"""mmdet3d's converter turns the synthetic set into v2 infos; the CMT GT database has points and image crops;
missing or corrupt inputs give errors that name the path and the command."""
import colorsys
import os
import os.path as osp
import pickle
import shutil

import mmengine
import numpy as np
import pytest
from nuscenes.utils.geometry_utils import view_points

from projects.mmdet3d_plugin.datasets.converters import DataPrepError, create_cmt_gt_database, create_nuscenes_infos_v2
from projects.mmdet3d_plugin.datasets.nuscenes_layout import CAMERA_NAMES, DETECTION_CLASSES


def test_infos_are_v2_and_match_the_devkit_projection(synthetic_root, nusc):
    train = mmengine.load(osp.join(synthetic_root, 'nuscenes_infos_train.pkl'))
    val = mmengine.load(osp.join(synthetic_root, 'nuscenes_infos_val.pkl'))
    assert train['metainfo']['version'] == 'v1.0-mini' and len(train['data_list']) == 4
    assert len(val['data_list']) == 4
    rng = np.random.default_rng(1)
    for info in val['data_list']:
        sample = nusc.get('sample', info['token'])
        assert list(info['images']) == list(CAMERA_NAMES)
        assert len(info['instances']) == len(sample['anns'])
        assert len(info.get('lidar_sweeps', [])) == (0 if not sample['prev'] else 10)
        for cam in CAMERA_NAMES:
            cam_token = sample['data'][cam]
            _, boxes, intrinsic = nusc.get_sample_data(cam_token)  # boxes visible in this camera
            l2i = np.eye(4)
            l2i[:3, :3] = np.asarray(info['images'][cam]['cam2img'])
            l2i = l2i @ np.asarray(info['images'][cam]['lidar2cam'])
            ann_index = {tok: i for i, tok in enumerate(sample['anns'])}
            for box in [boxes[i] for i in rng.permutation(len(boxes))[:3]]:
                ref = view_points(box.center[:, None], intrinsic, normalize=True)[:2, 0]
                centre = np.append(info['instances'][ann_index[box.token]]['bbox_3d'][:3], 1.0)
                p = l2i @ centre
                np.testing.assert_allclose(p[:2] / p[2], ref, atol=0.05)


def _dominant_class(img):
    """Class whose palette hue is nearest the median hue of the saturated pixels of a BGR crop, or None."""
    px = img.reshape(-1, 3)[:, ::-1] / 255.0
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in px[::max(1, len(px) // 400)]])
    sat = hsv[hsv[:, 1] > 0.4]
    if len(sat) < 3:
        return None
    hue = np.angle(np.exp(2j * np.pi * sat[:, 0]).mean()) / (2 * np.pi) % 1.0
    ref = np.arange(len(DETECTION_CLASSES)) / len(DETECTION_CLASSES)
    d = np.abs((hue - ref + 0.5) % 1.0 - 0.5)
    return DETECTION_CLASSES[int(np.argmin(d))]


def test_gt_database_has_points_and_class_coloured_crops(synthetic_root):
    import mmcv
    with open(osp.join(synthetic_root, 'nuscenes_dbinfos_train.pkl'), 'rb') as f:
        db = pickle.load(f)
    assert set(db) == set(DETECTION_CLASSES)
    checked = agree = 0
    for name, records in db.items():
        for rec in records:
            pts = np.fromfile(osp.join(synthetic_root, rec['path']), np.float32).reshape(-1, 5)
            assert len(pts) == rec['num_points_in_gt'] and rec['box3d_lidar'].shape == (9, )
            # points are relative to the box bottom centre and inside the box
            l, w, h = rec['box3d_lidar'][3:6]
            assert np.all(np.abs(pts[:, 2] - h / 2) <= h / 2 + 1e-3)
            assert np.all(np.hypot(pts[:, 0], pts[:, 1]) <= 0.5 * np.hypot(l, w) + 1e-3)
            if rec['image_path'] is None:
                continue
            crop = mmcv.imread(osp.join(synthetic_root, rec['image_path']))
            x0, y0, x1, y1 = rec['image_crop_box']
            assert crop.shape[:2] == (y1 - y0, x1 - x0) and rec['image_crop_key'] in CAMERA_NAMES
            assert rec['image_crop_depth'] > 0
            if min(crop.shape[:2]) >= 8:
                checked += 1
                agree += _dominant_class(crop) == name
    assert checked >= 20 and agree / checked > 0.85, (agree, checked)


def test_missing_root_table_sensor_and_info_errors(synthetic_root, tmp_path):
    missing = str(tmp_path / 'nope')
    with pytest.raises(DataPrepError, match=r"nope.*does not exist.*create_data.py"):
        create_nuscenes_infos_v2(missing, missing, 'v1.0-mini')
    root = tmp_path / 'partial'
    shutil.copytree(osp.join(synthetic_root, 'v1.0-mini'), root / 'v1.0-mini')
    shutil.copytree(osp.join(synthetic_root, 'maps'), root / 'maps')
    os.remove(root / 'v1.0-mini' / 'ego_pose.json')
    with pytest.raises(DataPrepError, match=r"ego_pose.json.*missing.*create_data.py"):
        create_nuscenes_infos_v2(str(root), str(root), 'v1.0-mini')
    shutil.copy(osp.join(synthetic_root, 'v1.0-mini', 'ego_pose.json'), root / 'v1.0-mini')
    with pytest.raises(DataPrepError, match=r"LIDAR_TOP.*pcd.bin.*create_data.py"):  # no sensor files at all
        create_nuscenes_infos_v2(str(root), str(root), 'v1.0-mini')
    with pytest.raises(DataPrepError, match=r"infos_train.pkl.*create_data.py nuscenes"):
        create_cmt_gt_database(str(root), str(root / 'nuscenes_infos_train.pkl'))


def test_corrupt_point_file_is_named(synthetic_root, tmp_path, mmdet3d_scope):
    root = tmp_path / 'corrupt'
    root.mkdir()
    for sub in ('v1.0-mini', 'maps', 'samples', 'sweeps'):
        os.symlink(osp.join(synthetic_root, sub), root / sub)
    infos = mmengine.load(osp.join(synthetic_root, 'nuscenes_infos_train.pkl'))
    bad = root / 'bad.pcd.bin'
    bad.write_bytes(b'\0' * 7)
    infos['data_list'] = infos['data_list'][:1]
    infos['data_list'][0]['lidar_points']['lidar_path'] = str(bad)  # absolute: kept by the prefix join
    mmengine.dump(infos, str(root / 'infos.pkl'))
    with pytest.raises(DataPrepError, match=r'bad.pcd.bin.*corrupt'):
        create_cmt_gt_database(
            str(root), str(root / 'infos.pkl'), db_dir=str(tmp_path / 'db'), db_info_path=str(tmp_path / 'db.pkl'))
