"""Per-camera matrices in the pipeline results, and projecting 3D boxes into the views.

Convention (kept by every transform here): ``results['cam2img']``, ``results['lidar2cam']`` and
``results['lidar2img']`` are lists (one per view) of float64 (4, 4) arrays with
``lidar2img[v] = cam2img[v] @ lidar2cam[v]``; a LiDAR point ``p`` lands at pixel
``(u, v) = (x / z, y / z)`` of ``[x, y, z, 1] = lidar2img @ [p, 1]`` in the current (augmented) image.
"""
import numpy as np

NEAR = 1e-3  # m: points with camera depth below this count as behind the camera


def to_4x4(mat) -> np.ndarray:
    """(3, 3) or (4, 4) array-like -> (4, 4) float64 (3x3 embedded top-left)."""
    mat = np.asarray(mat, dtype=np.float64)
    if mat.shape == (4, 4):
        return mat.copy()
    if mat.shape != (3, 3):
        raise ValueError(f'expected a (3, 3) or (4, 4) camera matrix, got shape {mat.shape}')
    out = np.eye(4)
    out[:3, :3] = mat
    return out


def require_lidar2img(results: dict, transform: str) -> None:
    """Raise a clear error when ``lidar2img`` has not been computed yet."""
    if 'lidar2img' not in results or not isinstance(results['lidar2img'], list):
        raise KeyError(f'{transform} needs results["lidar2img"] (a list of (4, 4) arrays per camera); put '
                       "dict(type='AddLidar2Img') right after LoadMultiViewImageFromFiles in the pipeline")


def right_multiply_lidar_matrices(results: dict, mat: np.ndarray) -> None:
    """Re-express the LiDAR frame: ``lidar2cam`` and ``lidar2img`` of every view are right-multiplied by ``mat``
    (4, 4), e.g. the inverse of a 3D augmentation applied to points and boxes."""
    for key in ('lidar2cam', 'lidar2img'):
        if key in results:
            results[key] = [np.asarray(m, np.float64) @ mat for m in results[key]]


def project_points(points: np.ndarray, lidar2img: np.ndarray):
    """Project (..., 3) LiDAR points with a (4, 4) matrix -> pixels (..., 2) and depths (...,)."""
    pts = np.concatenate([points, np.ones(points.shape[:-1] + (1, ))], -1) @ np.asarray(lidar2img).T
    depth = pts[..., 2]
    uv = pts[..., :2] / np.where(np.abs(depth) < 1e-9, 1e-9, depth)[..., None]
    return uv, depth


def projected_boxes_2d(corners: np.ndarray, lidar2img: np.ndarray, img_hw):
    """2D boxes of 3D boxes in one view.

    Args:
        corners (M, 8, 3): box corners in the LiDAR frame. lidar2img (4, 4). img_hw: (H, W) of the image.

    Returns:
        full (M, 4) float: unclipped [x0, y0, x1, y1]; clipped (M, 4) int: clipped to the image;
        valid (M,) bool: all corners in front of the camera and a non-empty clipped box.
    """
    uv, depth = project_points(corners, lidar2img)
    full = np.concatenate([uv.min(1), uv.max(1)], -1)
    h, w = img_hw
    clipped = np.stack([
        np.clip(np.floor(full[:, 0]), 0, w),
        np.clip(np.floor(full[:, 1]), 0, h),
        np.clip(np.ceil(full[:, 2]), 0, w),
        np.clip(np.ceil(full[:, 3]), 0, h)
    ], -1).astype(int)
    valid = (depth > NEAR).all(1) & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return full, clipped, valid
