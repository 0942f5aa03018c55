"""A 32-beam spinning LiDAR ray-cast against flat ground and oriented boxes (vectorised numpy).

Rays start at the sensor origin; each returns its nearest hit within ``max_range`` among the ground plane
(ego z = 0) and the object boxes. Output points are in the LiDAR frame as float32 (x, y, z, intensity, ring),
the nuScenes ``.pcd.bin`` layout.
"""
import numpy as np

from ..nuscenes_layout import LIDAR_ELEVATIONS_DEG
from .geometry import box_corners


class LidarSimulator:
    """Ray caster for one sensor pose in the ego frame.

    Args:
        lidar2ego_rot (3, 3): sensor->ego rotation. lidar2ego_trans (3,): sensor origin in the ego frame (m).
        azimuth_steps (int): rays per beam per revolution. max_range (float): metres.
    """

    def __init__(self, lidar2ego_rot, lidar2ego_trans, azimuth_steps=1080, max_range=70.0):
        self.rot = np.asarray(lidar2ego_rot, np.float64)
        self.trans = np.asarray(lidar2ego_trans, np.float64)
        self.azimuth_steps = int(azimuth_steps)
        self.max_range = float(max_range)
        el = np.deg2rad(LIDAR_ELEVATIONS_DEG)
        self.az = -np.pi + 2 * np.pi * np.arange(self.azimuth_steps) / self.azimuth_steps
        self.el = el
        # ray directions in the LiDAR frame, (B, A, 3)
        self.dirs = np.stack([
            np.cos(el)[:, None] * np.cos(self.az)[None],
            np.cos(el)[:, None] * np.sin(self.az)[None],
            np.broadcast_to(np.sin(el)[:, None], (len(el), self.azimuth_steps))
        ], -1)
        # ground plane ego z = 0 in LiDAR coordinates: n . p + h = 0
        normal = self.rot.T @ np.array([0.0, 0.0, 1.0])
        denom = self.dirs @ normal
        with np.errstate(divide='ignore'):
            t_ground = np.where(denom < -1e-6, -self.trans[2] / denom, np.inf)
        self.t_ground = t_ground.reshape(-1)

    def _box_hits(self, centres, wlh, rots):
        """Ray/box intersections. Returns ray ids (H,), distances (H,), box ids (H,) for every crossing."""
        ray_ids, ts, box_ids = [], [], []
        n_az = self.azimuth_steps
        dstep = 2 * np.pi / n_az
        for i in range(len(centres)):
            corners = box_corners(centres[i:i + 1], wlh[i:i + 1], rots[i:i + 1])[0]  # (8, 3) LiDAR frame
            rng_c = np.linalg.norm(corners, axis=1)
            if rng_c.min() > self.max_range:
                continue
            az_c = np.arctan2(corners[:, 1], corners[:, 0])
            az0 = np.arctan2(centres[i, 1], centres[i, 0])
            rel = (az_c - az0 + np.pi) % (2 * np.pi) - np.pi
            k0 = int(np.floor((az0 + rel.min() + np.pi) / dstep))
            k1 = int(np.ceil((az0 + rel.max() + np.pi) / dstep))
            az_idx = np.arange(k0, k1 + 1) % n_az
            el_c = np.arcsin(np.clip(corners[:, 2] / np.maximum(rng_c, 1e-6), -1, 1))
            b_idx = np.nonzero((self.el >= el_c.min() - 0.03) & (self.el <= el_c.max() + 0.03))[0]
            if len(b_idx) == 0 or len(az_idx) == 0:
                continue
            rays = (b_idx[:, None] * n_az + az_idx[None]).reshape(-1)
            d = self.dirs.reshape(-1, 3)[rays]  # (R, 3)
            rot = rots[i]
            o_local = rot.T @ (-centres[i])  # ray origin in box frame
            d_local = d @ rot  # (R, 3)
            half = np.array([wlh[i, 1], wlh[i, 0], wlh[i, 2]]) / 2.0  # (l, w, h) / 2
            with np.errstate(divide='ignore', invalid='ignore'):
                t1 = (-half - o_local) / d_local
                t2 = (half - o_local) / d_local
            tmin = np.nanmax(np.minimum(t1, t2), axis=1)
            tmax = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tmax >= tmin) & (tmin > 0) & (tmin < self.max_range)
            ray_ids.append(rays[hit])
            ts.append(tmin[hit])
            box_ids.append(np.full(int(hit.sum()), i))
        if not ray_ids:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        return np.concatenate(ray_ids), np.concatenate(ts), np.concatenate(box_ids)

    def scan(self, centres, wlh, rots, labels, intensity_of_label, rng):
        """Cast all rays against boxes given in the LiDAR frame.

        Args:
            centres (M, 3), wlh (M, 3), rots (M, 3, 3): boxes in the LiDAR frame (geometric centres, sizes in
                m, box->LiDAR rotations; a box's x axis is its length).
            labels (M,) int and intensity_of_label (C,): per-class return intensity.
            rng (np.random.Generator): noise source.

        Returns:
            points (N, 5) float32 (x, y, z, intensity, ring); hits_per_box (M,) int: returns on each box;
            crossings_per_box (M,) int: rays that reach each box before the ground (visible or occluded).
        """
        m = len(centres)
        t_best = self.t_ground.copy()
        owner = np.full(t_best.shape, -1, np.int64)
        crossings = np.zeros(m, np.int64)
        if m:
            ray_ids, ts, box_ids = self._box_hits(centres, wlh, rots)
            in_front_of_ground = ts < self.t_ground[ray_ids]
            crossings = np.bincount(box_ids[in_front_of_ground], minlength=m)
            order = np.lexsort((ts, ray_ids))
            ray_ids, ts, box_ids = ray_ids[order], ts[order], box_ids[order]
            first = np.ones(len(ray_ids), bool)
            first[1:] = ray_ids[1:] != ray_ids[:-1]
            ray_ids, ts, box_ids = ray_ids[first], ts[first], box_ids[first]
            closer = ts < t_best[ray_ids]
            t_best[ray_ids[closer]] = ts[closer]
            owner[ray_ids[closer]] = box_ids[closer]
        valid = np.nonzero(t_best < self.max_range)[0]
        t = t_best[valid] + rng.normal(0.0, 0.01, size=len(valid))
        pts = self.dirs.reshape(-1, 3)[valid] * t[:, None]
        own = owner[valid]
        inten = np.where(own >= 0, np.asarray(intensity_of_label)[labels[np.maximum(own, 0)]], 8.0)
        inten = np.clip(inten + rng.normal(0.0, 3.0, size=len(valid)), 0, 255)
        ring = (valid // self.azimuth_steps).astype(np.float64)
        points = np.concatenate([pts, inten[:, None], ring[:, None]], 1).astype(np.float32)
        hits = np.bincount(own[own >= 0], minlength=m) if m else np.zeros(0, np.int64)
        return points, hits, crossings
