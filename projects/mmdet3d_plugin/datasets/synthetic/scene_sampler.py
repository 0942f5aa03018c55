"""Random scene content: an ego trajectory and objects of the 10 detection classes moving at constant velocity.

Frames: the global frame is nuScenes' (x east, y north, z up, ground at z=0); the ego frame is the vehicle's
(x forward, y left, z up). Times are seconds from the scene start; timestamps are integer microseconds.
"""
from dataclasses import dataclass

import numpy as np

from ..nuscenes_layout import CLASS_MOTION, CLASS_SIZE_WLH, DETECTION_CLASSES, KEYFRAME_HZ

# objects per class per scene (before +-1 jitter); eval radius per class minus a margin (devkit class_range)
_CLASS_COUNT = {
    'car': 5,
    'truck': 2,
    'trailer': 1,
    'bus': 1,
    'construction_vehicle': 1,
    'bicycle': 2,
    'motorcycle': 2,
    'pedestrian': 4,
    'traffic_cone': 3,
    'barrier': 3
}
_CLASS_MAX_RADIUS = {
    'car': 46.0,
    'truck': 46.0,
    'trailer': 46.0,
    'bus': 46.0,
    'construction_vehicle': 46.0,
    'bicycle': 36.0,
    'motorcycle': 36.0,
    'pedestrian': 36.0,
    'traffic_cone': 27.0,
    'barrier': 27.0
}
MIN_RADIUS = 6.0  # m from the ego at every keyframe
SAME_CLASS_MIN_DIST = 10.0  # m between objects of one class at every keyframe (so a 5 m shift never matches)


@dataclass
class SceneContent:
    """One scene. ``M`` objects; all arrays are float64 unless noted.

    ego_xy0 (2,), ego_yaw0, ego_speed (m/s), ego_yaw_rate (rad/s): the ego path (constant speed and turn rate).
    labels (M,) int: index into DETECTION_CLASSES. wlh (M, 3) m. xy0 (M, 2) global centre at t=0.
    z (M,) global centre height. yaw (M,) global heading (rad). vel (M, 2) global velocity (m/s).
    """
    ego_xy0: np.ndarray
    ego_yaw0: float
    ego_speed: float
    ego_yaw_rate: float
    labels: np.ndarray
    wlh: np.ndarray
    xy0: np.ndarray
    z: np.ndarray
    yaw: np.ndarray
    vel: np.ndarray

    def ego_pose(self, t):
        """Ego (x, y, yaw) in the global frame at times ``t`` (T,) -> three (T,) arrays."""
        t = np.asarray(t, dtype=np.float64)
        yaw = self.ego_yaw0 + self.ego_yaw_rate * t
        if abs(self.ego_yaw_rate) < 1e-9:
            dx, dy = self.ego_speed * t * np.cos(self.ego_yaw0), self.ego_speed * t * np.sin(self.ego_yaw0)
        else:
            k = self.ego_speed / self.ego_yaw_rate
            dx = k * (np.sin(yaw) - np.sin(self.ego_yaw0))
            dy = -k * (np.cos(yaw) - np.cos(self.ego_yaw0))
        return self.ego_xy0[0] + dx, self.ego_xy0[1] + dy, yaw

    def object_xy(self, t: float) -> np.ndarray:
        """Global object centres (M, 2) at time ``t``."""
        return self.xy0 + self.vel * t

    def boxes_in_ego(self, t: float):
        """Object boxes in the ego frame at time ``t``: centres (M, 3), wlh (M, 3), yaw (M,)."""
        ex, ey, eyaw = (float(v[0]) for v in self.ego_pose([t]))
        c, s = np.cos(eyaw), np.sin(eyaw)
        d = self.object_xy(t) - np.array([ex, ey])
        centres = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], self.z], axis=1)
        return centres, self.wlh, self.yaw - eyaw


def frame_times(num_keyframes: int, sweeps_per_keyframe: int):
    """LiDAR frame times (s) and a keyframe flag: keyframes at KEYFRAME_HZ, ``sweeps_per_keyframe`` sweeps evenly
    between consecutive keyframes (9 gives nuScenes' 20 Hz LiDAR)."""
    step = 1.0 / KEYFRAME_HZ / (sweeps_per_keyframe + 1)
    n = (num_keyframes - 1) * (sweeps_per_keyframe + 1) + 1
    idx = np.arange(n)
    return idx * step, idx % (sweeps_per_keyframe + 1) == 0


def sample_scene(rng: np.random.Generator, num_keyframes: int) -> SceneContent:
    """Draw one scene: ego path plus non-overlapping objects of every class, deterministic given ``rng``."""
    key_t = np.arange(num_keyframes) / KEYFRAME_HZ
    ego_speed = float(rng.choice([0.0, rng.uniform(2.0, 10.0)], p=[0.25, 0.75]))
    scene = SceneContent(
        ego_xy0=rng.uniform(300.0, 1800.0, size=2),
        ego_yaw0=float(rng.uniform(-np.pi, np.pi)),
        ego_speed=ego_speed,
        ego_yaw_rate=float(rng.uniform(-0.08, 0.08)),
        labels=np.zeros(0, np.int64),
        wlh=np.zeros((0, 3)),
        xy0=np.zeros((0, 2)),
        z=np.zeros(0),
        yaw=np.zeros(0),
        vel=np.zeros((0, 2)))
    ex, ey, eyaw = scene.ego_pose(key_t)
    ego_xy = np.stack([ex, ey], 1)  # (K, 2)
    mid = ego_xy[len(key_t) // 2]
    mid_yaw = eyaw[len(key_t) // 2]

    labels, wlh, xy0, yaw, vel = [], [], [], [], []
    tracks = np.zeros((0, len(key_t), 2))  # accepted objects' positions at keyframes
    radii = np.zeros(0)
    for name in DETECTION_CLASSES:
        cls = DETECTION_CLASSES.index(name)
        count = max(1, _CLASS_COUNT[name] + int(rng.integers(-1, 2)))
        for _ in range(count):
            size = np.array(CLASS_SIZE_WLH[name]) * rng.uniform(0.9, 1.1, size=3)
            radius = 0.5 * np.hypot(size[0], size[1])
            p_move, (v_lo, v_hi) = CLASS_MOTION[name]
            for _attempt in range(100):
                r = np.sqrt(rng.uniform(MIN_RADIUS**2, _CLASS_MAX_RADIUS[name]**2))
                ang = rng.uniform(-np.pi, np.pi) + mid_yaw
                heading = rng.uniform(-np.pi, np.pi)
                speed = rng.uniform(v_lo, v_hi) if rng.random() < p_move else 0.0
                v = speed * np.array([np.cos(heading), np.sin(heading)])
                centre_mid = mid + r * np.array([np.cos(ang), np.sin(ang)])
                track = centre_mid + (key_t - key_t[len(key_t) // 2])[:, None] * v  # (K, 2)
                if np.min(np.linalg.norm(track - ego_xy, axis=1)) < MIN_RADIUS + radius:
                    continue
                if len(radii):
                    dist = np.linalg.norm(tracks - track[None], axis=2).min(axis=1)  # (M,)
                    need = radii + radius + 0.5
                    same = np.asarray(labels) == cls
                    need[same] = np.maximum(need[same], SAME_CLASS_MIN_DIST)
                    if np.any(dist < need):
                        continue
                labels.append(cls)
                wlh.append(size)
                xy0.append(track[0])
                yaw.append(heading)
                vel.append(v)
                tracks = np.concatenate([tracks, track[None]], 0)
                radii = np.append(radii, radius)
                break
    scene.labels = np.asarray(labels, np.int64)
    scene.wlh = np.asarray(wlh).reshape(-1, 3)
    scene.xy0 = np.asarray(xy0).reshape(-1, 2)
    scene.z = scene.wlh[:, 2] / 2.0
    scene.yaw = np.asarray(yaw)
    scene.vel = np.asarray(vel).reshape(-1, 2)
    return scene


__all__ = ['SceneContent', 'sample_scene', 'frame_times']
