"""Small rigid-geometry helpers (numpy, float64): quaternions (w, x, y, z) and oriented boxes."""
import numpy as np


def quat_to_matrix(q) -> np.ndarray:
    """(w, x, y, z) unit quaternion -> (3, 3) rotation matrix."""
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def yaw_quat(yaw: float) -> list:
    """Rotation about +z by ``yaw`` radians as a (w, x, y, z) list."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def yaw_matrix(yaw) -> np.ndarray:
    """Rotation(s) about +z: scalar -> (3, 3); (M,) -> (M, 3, 3)."""
    yaw = np.asarray(yaw, np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    o, i = np.zeros_like(yaw), np.ones_like(yaw)
    return np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2)


_UNIT_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
# faces as corner indices in a consistent winding, with outward normals in the box frame
BOX_FACES = (((4, 5, 7, 6), (1, 0, 0)), ((0, 2, 3, 1), (-1, 0, 0)), ((2, 6, 7, 3), (0, 1, 0)),
             ((0, 1, 5, 4), (0, -1, 0)), ((1, 3, 7, 5), (0, 0, 1)), ((0, 4, 6, 2), (0, 0, -1)))


def box_corners(centres, wlh, rots) -> np.ndarray:
    """Corners (M, 8, 3) of boxes with geometric ``centres`` (M, 3), sizes ``wlh`` (M, 3) (the box x axis is
    its length l, y its width w) and box->frame rotations ``rots`` (M, 3, 3)."""
    centres, wlh, rots = (np.asarray(a, np.float64) for a in (centres, wlh, rots))
    lwh = wlh[:, [1, 0, 2]]
    local = _UNIT_CORNERS[None] * lwh[:, None]  # (M, 8, 3)
    return np.einsum('mij,mkj->mki', rots, local) + centres[:, None]


def rigid(rot, trans) -> np.ndarray:
    """(3, 3) rotation and (3,) translation -> (4, 4) homogeneous transform."""
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = trans
    return out
