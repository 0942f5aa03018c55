"""CMT's GT database: per training object, its LiDAR points and an image crop.

Like mmdet3d's ``create_groundtruth_database`` for nuScenes (10 sweeps, valid boxes only, points relative to the
box bottom centre in ``<prefix>_gt_database/<sample_idx>_<class>_<i>.bin``) plus, as CMT's own tool, the crop of
the object from the camera where its projected 2D box (all 8 corners in front of the camera, clipped to the
image) is largest: ``<sample_idx>_<class>_<i>.png``. Extra db-info keys: ``image_path`` (crop path relative to
the data root, None if no camera sees the whole box), ``image_crop_key`` (camera name), ``image_crop_depth``
(camera depth of the box centre, m), ``image_crop_box`` ([x0, y0, x1, y1] in the original image).
"""
import os
import os.path as osp
import pickle

import cv2
import mmengine
import numpy as np

from mmdet3d.structures.ops import box_np_ops
from ..nuscenes_layout import CAMERA_NAMES, DETECTION_CLASSES
from ..transforms.camera_geometry import project_points, projected_boxes_2d
from .errors import DataPrepError


def nuscenes_data_prefix() -> dict:
    """``data_prefix`` of NuScenesDataset for the standard nuScenes folder layout."""
    prefix = dict(pts='samples/LIDAR_TOP', sweeps='sweeps/LIDAR_TOP')
    prefix.update({cam: f'samples/{cam}' for cam in CAMERA_NAMES})
    return prefix


def _build_dataset(data_root, info_file, sweeps):
    from mmengine.registry import init_default_scope

    from mmdet3d.registry import DATASETS
    init_default_scope('mmdet3d')
    pipeline = [
        dict(type='LoadPointsFromFile', coord_type='LIDAR', load_dim=5, use_dim=5),
        dict(
            type='LoadPointsFromMultiSweeps',
            sweeps_num=sweeps,
            use_dim=[0, 1, 2, 3, 4],
            pad_empty_sweeps=True,
            remove_close=True),
        dict(type='LoadMultiViewImageFromFiles', to_float32=False, num_views=len(CAMERA_NAMES)),
        dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
        dict(type='AddLidar2Img'),
    ]
    return DATASETS.build(
        dict(
            type='NuScenesDataset',
            data_root=data_root,
            ann_file=osp.abspath(info_file),
            data_prefix=nuscenes_data_prefix(),
            use_valid_flag=True,
            test_mode=False,
            filter_empty_gt=False,
            modality=dict(use_lidar=True, use_camera=True),
            metainfo=dict(classes=DETECTION_CLASSES),
            pipeline=pipeline))


def _check_point_files(info: dict, num_feats: int = 5) -> None:
    """A .pcd.bin must hold a whole number of float32 ``num_feats``-vectors; name the file if not."""
    sweeps = info.get('lidar_sweeps', [])
    paths = [info['lidar_points']['lidar_path']] + [s['lidar_points']['lidar_path'] for s in sweeps]
    for path in paths:
        if not osp.isfile(path):
            raise DataPrepError(f'LiDAR file {path!r} (sample {info["token"]}) is missing; the nuScenes root is '
                                'incomplete or the infos are stale (re-run tools/create_data.py)')
        size = osp.getsize(path)
        if size == 0 or size % (4 * num_feats):
            raise DataPrepError(f'LiDAR file {path!r} is corrupt: {size} bytes is not a whole number of '
                                f'{num_feats} float32 values per point')


def _best_crop(img_list, lidar2img, corners, centres):
    """Per object: (view index, clipped box, centre depth) of its largest projection, or None."""
    best = [None] * len(corners)
    best_area = np.zeros(len(corners))
    for v, (img, l2i) in enumerate(zip(img_list, lidar2img)):
        _, clipped, valid = projected_boxes_2d(corners, l2i, img.shape[:2])
        _, depth = project_points(centres, l2i)
        area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        for i in np.nonzero(valid & (area > best_area))[0]:
            best_area[i] = area[i]
            best[i] = (v, clipped[i], float(depth[i]))
    return best


def create_cmt_gt_database(data_root: str,
                           info_file: str,
                           info_prefix: str = 'nuscenes',
                           sweeps: int = 10,
                           db_dir: str = None,
                           db_info_path: str = None) -> str:
    """Write the database files and ``{info_prefix}_dbinfos_train.pkl`` under ``data_root``; return its path.

    Args:
        data_root (str): nuScenes root (sensor files). info_file (str): v2 train info pkl.
        sweeps (int): LiDAR sweeps merged into each object's points (mmdet3d and CMT use 10).
    """
    if not osp.isfile(info_file):
        raise DataPrepError(f'Info file {info_file!r} does not exist; create it with `python tools/create_data.py '
                            f'nuscenes --root-path {data_root} --out-dir {osp.dirname(info_file) or "."}`')
    db_rel = f'{info_prefix}_gt_database'
    db_dir = db_dir or osp.join(data_root, db_rel)
    db_info_path = db_info_path or osp.join(data_root, f'{info_prefix}_dbinfos_train.pkl')
    os.makedirs(db_dir, exist_ok=True)
    dataset = _build_dataset(data_root, info_file, sweeps)
    all_db_infos = {}
    group_counter = 0
    for j in mmengine.track_iter_progress(list(range(len(dataset)))):
        info = dataset.get_data_info(j)
        for cam, cam_info in info['images'].items():
            if not osp.isfile(cam_info['img_path']):
                raise DataPrepError(f'Camera image {cam_info["img_path"]!r} ({cam} of sample {info["token"]}) is '
                                    f'missing; the nuScenes root {data_root!r} is incomplete.')
        _check_point_files(info)
        example = dataset.pipeline(info)
        points = example['points'].numpy()
        boxes = example['gt_bboxes_3d']
        box_np = boxes.numpy()
        labels = example['gt_labels_3d']
        sample_idx = example['sample_idx']
        cam_keys = list(info['images'])
        in_box = box_np_ops.points_in_rbbox(points, box_np)
        crops = _best_crop(example['img'], example['lidar2img'],
                           boxes.corners.numpy().astype(np.float64),
                           boxes.gravity_center.numpy().astype(np.float64))
        for i in range(len(box_np)):
            if labels[i] < 0:
                continue
            name = DETECTION_CLASSES[labels[i]]
            stem = f'{sample_idx}_{name}_{i}'
            obj_points = points[in_box[:, i]]
            obj_points[:, :3] -= box_np[i, :3]
            obj_points.astype(np.float32).tofile(osp.join(db_dir, stem + '.bin'))
            record = dict(
                name=name,
                path=osp.join(db_rel, stem + '.bin'),
                image_idx=sample_idx,
                gt_idx=i,
                box3d_lidar=box_np[i],
                num_points_in_gt=int(obj_points.shape[0]),
                difficulty=0,
                group_id=group_counter,
                image_path=None,
                image_crop_key=None,
                image_crop_depth=None,
                image_crop_box=None)
            group_counter += 1
            if crops[i] is not None:
                v, (x0, y0, x1, y1), depth = crops[i]
                cv2.imwrite(osp.join(db_dir, stem + '.png'), example['img'][v][y0:y1, x0:x1])
                record.update(
                    image_path=osp.join(db_rel, stem + '.png'),
                    image_crop_key=cam_keys[v],
                    image_crop_depth=depth,
                    image_crop_box=[int(x0), int(y0), int(x1), int(y1)])
            all_db_infos.setdefault(name, []).append(record)
    for name, recs in all_db_infos.items():
        print(f'load {len(recs)} {name} database infos')
    with open(db_info_path, 'wb') as f:
        pickle.dump(all_db_infos, f)
    return db_info_path
