"""Pictures of 3D boxes: a bird's-eye view (BEV) of LiDAR points with GT and predicted boxes, and a camera image
with the boxes projected into it. Used by tools/run_demo.py, tools/misc/browse_dataset.py and
tools/misc/visualize_results.py.

Drawing goes through mmdet's ``DetLocalVisualizer`` (mmengine's Visualizer on a matplotlib Agg canvas; no display
needed). mmdet3d's ``Det3DLocalVisualizer`` subclasses it but imports open3d when its module loads, and this project
does not install open3d (its wheels pin numpy < 2), so its projection is redone here in a few lines
(``datasets/transforms/camera_geometry.project_points``); its own BEV drawing assumes a front-facing KITTI view.

BEV convention: LiDAR frame, x to the right, y up, the sensor at the image centre; the picture covers
``[-extent, extent]`` metres on both axes with ``size_px`` pixels per side. The metric point ``(x, y)`` lies in
pixel column ``floor((x + extent) * s)`` and row ``floor((extent - y) * s)`` with ``s = size_px / (2 * extent)``
pixels per metre (``bev_pixel_coords`` gives the continuous coordinates the drawing uses: mmengine's Visualizer shows
the image with ``extent=(0, W, H, 0)``, so pixel ``(row, col)`` covers ``[col, col + 1] x [row, row + 1]``).
"""
import functools
import warnings
from typing import Optional, Sequence

import numpy as np

from ..datasets.transforms.camera_geometry import NEAR, project_points

GT_COLOR = (0, 170, 0)  # RGB, box outlines and heading of ground truth
GT_FILL_ALPHA = 0.3  # GT boxes are filled with GT_COLOR at this opacity
PRED_COLOR = (230, 40, 40)  # RGB, predicted boxes
BEV_BACKGROUND = (255, 255, 255)
POINT_COLOR = (110, 110, 110)
GRID_COLOR = (215, 215, 215)
GRID_STEP_M = 10.0
# mmdet3d's corner order (LiDARInstance3DBoxes.corners): the 12 edges of a box
BOX_EDGES = ((0, 1), (0, 3), (0, 4), (1, 2), (1, 5), (3, 2), (3, 7), (4, 5), (4, 7), (2, 6), (5, 6), (6, 7))

_VISUALIZER = None


def get_visualizer():
    """One shared mmdet ``DetLocalVisualizer`` (mmengine keeps visualizers by name)."""
    global _VISUALIZER
    if _VISUALIZER is None:
        import matplotlib
        matplotlib.use('Agg')
        from mmdet.visualization import DetLocalVisualizer
        _VISUALIZER = DetLocalVisualizer.get_instance('cmt_plugin_pictures')
    return _VISUALIZER


def _boxes_array(boxes) -> np.ndarray:
    """LiDARInstance3DBoxes, tensor or array (N, >=7) -> float64 (N, 7): x, y, z_bottom, dx, dy, dz, yaw."""
    if boxes is None:
        return np.zeros((0, 7))
    if hasattr(boxes, 'tensor'):
        boxes = boxes.tensor
    if hasattr(boxes, 'detach'):
        boxes = boxes.detach().cpu().numpy()
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, np.shape(boxes)[-1] if np.size(boxes) else 7)
    if boxes.shape[1] < 7:
        raise ValueError(f'boxes must have at least 7 values (x, y, z, dx, dy, dz, yaw) per row, got shape '
                         f'{boxes.shape}')
    return boxes[:, :7]


def bev_corners(boxes) -> np.ndarray:
    """(N, >=7) LiDAR boxes -> (N, 4, 2) BEV corners in metres, counter-clockwise from front-left:
    front-left, rear-left, rear-right, front-right (front = +dx/2 along the heading ``yaw`` from +x)."""
    b = _boxes_array(boxes)
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    hx, hy = b[:, 3] / 2, b[:, 4] / 2
    local = np.stack(
        [np.stack([hx, hy], -1),
         np.stack([-hx, hy], -1),
         np.stack([-hx, -hy], -1),
         np.stack([hx, -hy], -1)], 1)  # (N, 4, 2)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], 1)  # (N, 2, 2)
    return np.einsum('nij,nkj->nki', rot, local) + b[:, None, :2]


def bev_pixel_coords(xy: np.ndarray, extent: float, size_px: int) -> np.ndarray:
    """(..., 2) metres -> (..., 2) continuous image coordinates (column, row) of mmengine's Visualizer, in which
    pixel ``(row, col)`` covers ``[col, col + 1] x [row, row + 1]``."""
    xy = np.asarray(xy, dtype=np.float64)
    scale = size_px / (2.0 * extent)
    return np.stack([(xy[..., 0] + extent) * scale, (extent - xy[..., 1]) * scale], -1)


def _quiet(fn):
    """mmengine's Visualizer warns for every shape reaching past the image border; clipping is what we want."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            return fn(*args, **kwargs)

    return wrapper


@_quiet
def render_bev(points: Optional[np.ndarray] = None,
               gt_boxes=None,
               pred_boxes=None,
               pred_scores: Optional[Sequence[float]] = None,
               extent: float = 51.2,
               size_px: int = 800,
               title: Optional[str] = None,
               max_points: int = 40000,
               grid: bool = True) -> np.ndarray:
    """A BEV picture (``size_px``, ``size_px``, 3) uint8 RGB.

    Args:
        points: (N, >=2) LiDAR points (x, y first), drawn grey; at most ``max_points`` (evenly subsampled).
        gt_boxes / pred_boxes: LiDARInstance3DBoxes or (M, >=7) arrays (x, y, z, dx, dy, dz, yaw); GT filled green
            (``GT_COLOR``, ``GT_FILL_ALPHA``) with outline, predictions red outlines; a line from the centre to
            the front edge shows the heading.
        pred_scores: (M,) scores written next to the predicted boxes.
        extent (m): half width of the square view. title: text in the top-left corner.
    """
    vis = get_visualizer()
    vis.set_image(np.full((size_px, size_px, 3), BEV_BACKGROUND, np.uint8))
    if grid:
        ticks = np.arange(-np.floor(extent / GRID_STEP_M) * GRID_STEP_M, extent + 1e-6, GRID_STEP_M)
        lo, hi = bev_pixel_coords(np.array([[-extent, extent], [extent, -extent]]), extent, size_px)
        cols = bev_pixel_coords(np.stack([ticks, np.zeros_like(ticks)], -1), extent, size_px)[:, 0]
        rows = bev_pixel_coords(np.stack([np.zeros_like(ticks), ticks], -1), extent, size_px)[:, 1]
        xs = np.concatenate([np.stack([cols, cols], -1), np.tile([[lo[0], hi[0]]], (len(rows), 1))])
        ys = np.concatenate([np.tile([[lo[1], hi[1]]], (len(cols), 1)), np.stack([rows, rows], -1)])
        vis.draw_lines(xs, ys, colors=GRID_COLOR, line_widths=0.5)
    if points is not None and len(points):
        pts = np.asarray(points)[:, :2]
        pts = pts[(np.abs(pts) < extent).all(1)]
        if len(pts) > max_points:
            pts = pts[np.linspace(0, len(pts) - 1, max_points).astype(int)]
        if len(pts):
            vis.draw_points(bev_pixel_coords(pts, extent, size_px), colors=POINT_COLOR, sizes=np.full(len(pts), 1.0))
    for boxes, color, fill in ((gt_boxes, GT_COLOR, True), (pred_boxes, PRED_COLOR, False)):
        b = _boxes_array(boxes)
        if not len(b):
            continue
        polys = [p for p in bev_pixel_coords(bev_corners(b), extent, size_px)]
        if fill:
            vis.draw_polygons(polys, edge_colors='none', face_colors=color, alpha=GT_FILL_ALPHA)
        vis.draw_polygons(polys, edge_colors=color, line_widths=1.5 if fill else 1.2)
        centre = bev_pixel_coords(b[:, :2], extent, size_px)
        front = bev_pixel_coords(bev_corners(b)[:, [0, 3]].mean(1), extent, size_px)
        vis.draw_lines(
            np.stack([centre[:, 0], front[:, 0]], -1),
            np.stack([centre[:, 1], front[:, 1]], -1),
            colors=color,
            line_widths=1.2)
    if pred_scores is not None and len(_boxes_array(pred_boxes)):
        pos = bev_pixel_coords(bev_corners(pred_boxes)[:, 0], extent, size_px)
        vis.draw_texts([f'{s:.2f}' for s in pred_scores], pos, colors=PRED_COLOR, font_sizes=8)
    ego = bev_pixel_coords(np.zeros(2), extent, size_px)
    vis.draw_points(ego[None], colors=(0, 0, 0), marker='+', sizes=np.array([60.0]))
    if title:
        _draw_title(vis, title, font_size=9)
    return _image_of(vis, (size_px, size_px))


def _draw_title(vis, title: str, font_size: int) -> None:
    """Black ``title`` on a white box in the top-left corner of the current image."""
    vis.draw_texts(
        title,
        np.array([6, 6]),
        colors=(0, 0, 0),
        font_sizes=font_size,
        vertical_alignments='top',
        bboxes=dict(facecolor='white', alpha=0.8, edgecolor='none'))


def _image_of(vis, shape) -> np.ndarray:
    """The canvas with the axes pinned to the image (matplotlib would widen them for shapes past the border,
    shrinking the picture)."""
    h, w = shape[:2]
    vis.ax_save.set_xlim(0, w)
    vis.ax_save.set_ylim(h, 0)
    return vis.get_image()


def box_corners_3d(boxes) -> np.ndarray:
    """(N, >=7) LiDAR boxes (bottom centre) -> (N, 8, 3) corners in mmdet3d's order (see ``BOX_EDGES``)."""
    from mmdet3d.structures import LiDARInstance3DBoxes
    b = _boxes_array(boxes)
    if not len(b):
        return np.zeros((0, 8, 3))
    import torch
    return LiDARInstance3DBoxes(torch.as_tensor(b, dtype=torch.float64), box_dim=7).corners.numpy()


def projected_edges(boxes, lidar2img: np.ndarray, img_hw) -> np.ndarray:
    """(E, 2, 2) pixel segments (x, y) of the 12 edges of every box whose 8 corners are in front of the camera
    and whose projection touches the ``img_hw`` = (H, W) image."""
    corners = box_corners_3d(boxes)
    if not len(corners):
        return np.zeros((0, 2, 2))
    uv, depth = project_points(corners, lidar2img)
    h, w = img_hw
    keep = (depth > NEAR).all(1) & (uv[..., 0].max(1) >= 0) & (uv[..., 0].min(1) < w) & \
        (uv[..., 1].max(1) >= 0) & (uv[..., 1].min(1) < h)
    uv = uv[keep]
    idx = np.array(BOX_EDGES)
    return uv[:, idx].reshape(-1, 2, 2)


@_quiet
def render_camera(image_rgb: np.ndarray,
                  lidar2img: np.ndarray,
                  gt_boxes=None,
                  pred_boxes=None,
                  title: Optional[str] = None) -> np.ndarray:
    """``image_rgb`` (H, W, 3) uint8 with GT (green) and predicted (red) LiDAR boxes projected through
    ``lidar2img`` (4, 4) (``camera_geometry`` convention); boxes partly behind the camera are skipped."""
    vis = get_visualizer()
    vis.set_image(np.ascontiguousarray(image_rgb))
    h, w = image_rgb.shape[:2]
    for boxes, color in ((gt_boxes, GT_COLOR), (pred_boxes, PRED_COLOR)):
        segs = projected_edges(boxes, lidar2img, (h, w))
        if len(segs):
            vis.draw_lines(segs[:, :, 0], segs[:, :, 1], colors=color, line_widths=1.5)
    if title:
        _draw_title(vis, title, font_size=10)
    return _image_of(vis, image_rgb.shape)


def save_rgb(path: str, image_rgb: np.ndarray) -> str:
    """Write an RGB uint8 array as PNG/JPEG (by extension); returns ``path``."""
    import mmcv
    mmcv.imwrite(np.ascontiguousarray(image_rgb[..., ::-1]), path)
    return path
