"""Write a synthetic dataset in the nuScenes v1.0 on-disk format.

Layout under ``out``: ``<version>/*.json`` (the 13 tables nuscenes-devkit loads), ``samples/LIDAR_TOP/*.pcd.bin``
and ``sweeps/LIDAR_TOP/*.pcd.bin`` (float32 x, y, z, intensity, ring; keyframes at 2 Hz, sweeps between them at
20 Hz), ``samples/CAM_*/*.jpg`` (1600x900, one per camera per keyframe), ``maps/<token>.png``.
Everything is a deterministic function of the arguments (seed included). No RADAR is simulated, so
``num_radar_pts`` is 0 and the RADAR sensors are absent. Every instance is annotated in every keyframe of its
scene (constant velocity, so devkit velocities are exact); ``num_lidar_pts`` counts the keyframe's returns on the
box; ``visibility_token`` bins the fraction of LiDAR rays reaching the box (before the ground) that hit it first,
i.e. occlusion by other objects, into nuScenes' 4 levels ('1' if no ray reaches it). Attributes follow the
velocity rule mmdet3d's NuScenesMetric uses for predictions.
"""
import json
import os
import os.path as osp
from typing import Optional

import cv2
import numpy as np

from ..nuscenes_layout import (ATTRIBUTE_NAMES, CAMERA_CALIB, CAMERA_NAMES, CLASS_CATEGORY, CLASS_INTENSITY,
                               DETECTION_CLASSES, IMAGE_H, IMAGE_W, LIDAR_CALIB, LIDAR_NAME, VISIBILITY_LEVELS,
                               attribute_for)
from .camera_render import CameraRenderer
from .geometry import quat_to_matrix, yaw_matrix, yaw_quat
from .lidar_sim import LidarSimulator
from .scene_sampler import frame_times, sample_scene
from .splits import scene_names

TABLES = ('category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor', 'ego_pose', 'log', 'scene',
          'sample', 'sample_data', 'sample_annotation', 'map')
_T0_US = 1532402927000000  # first scene start (a 2018 nuScenes-like timestamp), microseconds
_LOCATION = 'singapore-onenorth'


class _Tokens:
    """Deterministic 32-hex-digit tokens."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 7])

    def __call__(self) -> str:
        return self.rng.bytes(16).hex()


def _visibility_token(hits: int, crossings: int) -> str:
    frac = hits / crossings if crossings else 0.0
    return '4' if frac > 0.8 else '3' if frac > 0.6 else '2' if frac > 0.4 else '1'


class _TableBuilder:
    """Accumulates table records; static tables are filled at construction."""

    def __init__(self, tok: _Tokens):
        self.tok = tok
        self.t = {name: [] for name in TABLES}
        self.category = {}
        for name in DETECTION_CLASSES:
            rec = dict(token=tok(), name=CLASS_CATEGORY[name], description=f'synthetic {name}')
            self.t['category'].append(rec)
            self.category[name] = rec['token']
        self.attribute = {}
        for name in ATTRIBUTE_NAMES:
            rec = dict(token=tok(), name=name, description=name)
            self.t['attribute'].append(rec)
            self.attribute[name] = rec['token']
        for token, level in VISIBILITY_LEVELS:
            self.t['visibility'].append(dict(token=token, level=level, description=f'visibility {level}'))
        self.calib = {}
        for channel in (LIDAR_NAME, ) + CAMERA_NAMES:
            sensor = dict(token=tok(), channel=channel, modality='lidar' if channel == LIDAR_NAME else 'camera')
            self.t['sensor'].append(sensor)
            if channel == LIDAR_NAME:
                trans, rot, intr = LIDAR_CALIB[0], LIDAR_CALIB[1], []
            else:
                trans, rot, intr = CAMERA_CALIB[channel]
            rec = dict(
                token=tok(),
                sensor_token=sensor['token'],
                translation=list(trans),
                rotation=list(rot),
                camera_intrinsic=[list(r) for r in intr])
            self.t['calibrated_sensor'].append(rec)
            self.calib[channel] = rec['token']
        self.map_token = tok()
        self.t['map'].append(
            dict(token=self.map_token, log_tokens=[], category='semantic_prior', filename=f'maps/{self.map_token}.png'))

    def ego_pose(self, ts: int, x: float, y: float, yaw: float) -> str:
        rec = dict(token=self.tok(), timestamp=ts, rotation=yaw_quat(yaw), translation=[float(x), float(y), 0.0])
        self.t['ego_pose'].append(rec)
        return rec['token']

    def link(self, records):
        """Set prev/next along a chronological list of records."""
        for a, b in zip(records[:-1], records[1:]):
            a['next'], b['prev'] = b['token'], a['token']


def _write_scene(out, tb: _TableBuilder, name: str, index: int, seed: int, num_keyframes: int, sweeps_per_keyframe: int,
                 lidar: LidarSimulator, renderer: CameraRenderer):
    """Simulate one scene and append its records to ``tb``; writes its sensor files under ``out``."""
    rng = np.random.default_rng([seed, index])
    tok = tb.tok
    scene = sample_scene(rng, num_keyframes)
    logfile = f'n015-2018-07-{11 + index % 18:02d}-11-22-45+0800'
    log = dict(token=tok(), logfile=logfile, vehicle='n015', date_captured=logfile[5:15], location=_LOCATION)
    tb.t['log'].append(log)
    tb.t['map'][0]['log_tokens'].append(log['token'])
    scene_rec = dict(
        token=tok(),
        log_token=log['token'],
        nbr_samples=num_keyframes,
        name=name,
        description=f'synthetic scene {index} (seed {seed})')
    t0 = _T0_US + index * 100_000_000
    times, is_key = frame_times(num_keyframes, sweeps_per_keyframe)
    l2e_rot, l2e_trans = quat_to_matrix(LIDAR_CALIB[1]), np.asarray(LIDAR_CALIB[0])
    intensity = np.array([CLASS_INTENSITY[c] for c in DETECTION_CLASSES], np.float64)

    samples = [
        dict(token=tok(), timestamp=int(t0 + round(t * 1e6)), prev='', next='', scene_token=scene_rec['token'])
        for t in times[is_key]
    ]
    instances = [
        dict(token=tok(), category_token=tb.category[DETECTION_CLASSES[c]], nbr_annotations=num_keyframes)
        for c in scene.labels
    ]
    anns = [[None] * num_keyframes for _ in instances]
    lidar_sds, cam_sds = [], {c: [] for c in CAMERA_NAMES}
    key_idx = 0
    for t, key in zip(times, is_key):
        ts = int(t0 + round(t * 1e6))
        sample = samples[min(key_idx, num_keyframes - 1)]
        ex, ey, eyaw = (float(v[0]) for v in scene.ego_pose([t]))
        centres_e, wlh, yaw_e = scene.boxes_in_ego(t)
        rots_e = yaw_matrix(yaw_e).reshape(-1, 3, 3)
        centres_l = (centres_e - l2e_trans) @ l2e_rot
        rots_l = np.einsum('ji,mjk->mik', l2e_rot, rots_e)
        points, hits, crossings = lidar.scan(centres_l, wlh, rots_l, scene.labels, intensity, rng)
        folder = 'samples' if key else 'sweeps'
        fname = f'{folder}/{LIDAR_NAME}/{logfile}__{LIDAR_NAME}__{ts}.pcd.bin'
        points.tofile(osp.join(out, fname))
        sd = dict(
            token=tok(),
            sample_token=sample['token'],
            ego_pose_token=tb.ego_pose(ts, ex, ey, eyaw),
            calibrated_sensor_token=tb.calib[LIDAR_NAME],
            timestamp=ts,
            fileformat='pcd',
            is_key_frame=bool(key),
            height=0,
            width=0,
            filename=fname,
            prev='',
            next='')
        lidar_sds.append(sd)
        if not key:
            continue
        for cam in CAMERA_NAMES:
            cname = f'samples/{cam}/{logfile}__{cam}__{ts}.jpg'
            img = renderer.render(cam, centres_e, wlh, rots_e, scene.labels)
            cv2.imwrite(osp.join(out, cname), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
            cam_sds[cam].append(
                dict(
                    token=tok(),
                    sample_token=sample['token'],
                    ego_pose_token=tb.ego_pose(ts, ex, ey, eyaw),
                    calibrated_sensor_token=tb.calib[cam],
                    timestamp=ts,
                    fileformat='jpg',
                    is_key_frame=True,
                    height=IMAGE_H,
                    width=IMAGE_W,
                    filename=cname,
                    prev='',
                    next=''))
        xy = scene.object_xy(t)
        for m in range(len(instances)):
            speed = float(np.linalg.norm(scene.vel[m]))
            attr = attribute_for(DETECTION_CLASSES[scene.labels[m]], speed)
            anns[m][key_idx] = dict(
                token=tok(),
                sample_token=sample['token'],
                instance_token=instances[m]['token'],
                visibility_token=_visibility_token(int(hits[m]), int(crossings[m])),
                attribute_tokens=[tb.attribute[attr]] if attr else [],
                translation=[float(xy[m, 0]), float(xy[m, 1]), float(scene.z[m])],
                size=[float(v) for v in scene.wlh[m]],
                rotation=yaw_quat(float(scene.yaw[m])),
                prev='',
                next='',
                num_lidar_pts=int(hits[m]),
                num_radar_pts=0)
        key_idx += 1

    tb.link(samples)
    tb.link(lidar_sds)
    for cam in CAMERA_NAMES:
        tb.link(cam_sds[cam])
        tb.t['sample_data'].extend(cam_sds[cam])
    tb.t['sample_data'].extend(lidar_sds)
    for inst, inst_anns in zip(instances, anns):
        tb.link(inst_anns)
        inst['first_annotation_token'] = inst_anns[0]['token']
        inst['last_annotation_token'] = inst_anns[-1]['token']
        tb.t['sample_annotation'].extend(inst_anns)
    tb.t['instance'].extend(instances)
    tb.t['sample'].extend(samples)
    scene_rec['first_sample_token'] = samples[0]['token']
    scene_rec['last_sample_token'] = samples[-1]['token']
    tb.t['scene'].append(scene_rec)
    return len(instances)


def generate_synthetic_nuscenes(out: str,
                                num_scenes: int,
                                seed: int = 0,
                                samples_per_scene: int = 8,
                                version: Optional[str] = None,
                                num_val_scenes: Optional[int] = None,
                                sweeps_per_keyframe: int = 9,
                                azimuth_steps: int = 1080,
                                progress: bool = True) -> dict:
    """Write ``num_scenes`` synthetic scenes (``samples_per_scene`` keyframes each) under ``out``.

    Returns a summary dict (version, train/val scene names, sample and annotation counts). ``out`` should be
    empty or absent; the CLI (tools/create_data.py synthetic) handles completeness markers and --overwrite.
    """
    from .splits import default_version
    if samples_per_scene < 2:
        raise ValueError(f'--samples-per-scene must be >= 2 (velocities need two keyframes), got {samples_per_scene}')
    version = version or default_version(num_scenes)
    train_names, val_names = scene_names(num_scenes, version, num_val_scenes)
    subdirs = [version, 'maps', f'samples/{LIDAR_NAME}', f'sweeps/{LIDAR_NAME}'
               ] + [f'samples/{c}' for c in CAMERA_NAMES]
    for sub in subdirs:
        os.makedirs(osp.join(out, sub), exist_ok=True)
    tb = _TableBuilder(_Tokens(seed))
    cv2.imwrite(osp.join(out, tb.t['map'][0]['filename']), np.zeros((64, 64), np.uint8))
    lidar = LidarSimulator(quat_to_matrix(LIDAR_CALIB[1]), LIDAR_CALIB[0], azimuth_steps=azimuth_steps)
    renderer = CameraRenderer()
    names = train_names + val_names
    iterator = range(len(names))
    if progress:
        from mmengine.utils import track_iter_progress
        iterator = track_iter_progress(list(iterator))
    num_objects = 0
    for i in iterator:
        num_objects += _write_scene(out, tb, names[i], i, seed, samples_per_scene, sweeps_per_keyframe, lidar, renderer)
    for name in TABLES:
        with open(osp.join(out, version, f'{name}.json'), 'w') as f:
            json.dump(tb.t[name], f)
    return dict(
        version=version,
        train_scenes=train_names,
        val_scenes=val_names,
        samples=len(tb.t['sample']),
        annotations=len(tb.t['sample_annotation']),
        instances=num_objects,
        seed=seed)
