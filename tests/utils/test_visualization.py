"""Pictures: the BEV plot puts each GT box where the box says (pixels checked against the documented axis
transform, recomputed here), and projected camera boxes land where lidar2img sends their corners."""
import numpy as np
import pytest

from projects.mmdet3d_plugin.utils import visualization as V


def _random_boxes(rng, n=4, ring=18.0):
    """n non-overlapping boxes (x, y, z, l, w, h, yaw) on a ring around the sensor."""
    angles = rng.permutation(np.linspace(0, 2 * np.pi, 8, endpoint=False))[:n] + rng.uniform(-0.1, 0.1, n)
    radius = ring + rng.uniform(-3, 3, n)
    length, width = rng.uniform(3.5, 6.0, n), rng.uniform(1.8, 2.6, n)
    return np.stack([
        radius * np.cos(angles), radius * np.sin(angles),
        rng.uniform(-2, 0, n), length, width,
        rng.uniform(1.4, 2.0, n),
        rng.uniform(-np.pi, np.pi, n)
    ], -1)


def _pixel_of(x, y, extent, size_px):
    """Row, column of the pixel holding metric (x, y): x right, y up, [-extent, extent] over size_px pixels."""
    scale = size_px / (2 * extent)
    return int(np.floor((extent - y) * scale)), int(np.floor((x + extent) * scale))


def _box_point(box, u, v):
    """Metric point at (u along the heading, v to its left) in the box frame."""
    c, s = np.cos(box[6]), np.sin(box[6])
    return box[0] + c * u - s * v, box[1] + s * u + c * v


def test_bev_gt_boxes_are_where_the_boxes_say():
    rng = np.random.default_rng()
    boxes = _random_boxes(rng)
    extent, size_px = 30.0, 600  # 10 px per metre
    # plus a box reaching past the border and far points: they must not rescale the view
    outside = np.array([[extent + 1.0, 0.0, 0.0, 6.0, 2.0, 1.5, 0.3]])
    far_points = np.array([[0.0, 3 * extent, 0.0], [-3 * extent, 0.0, 0.0]])
    img = V.render_bev(far_points, np.concatenate([boxes, outside]), extent=extent, size_px=size_px, grid=False)
    assert img.shape == (size_px, size_px, 3) and img.dtype == np.uint8
    bg = np.array(V.BEV_BACKGROUND, float)
    gt = np.array(V.GT_COLOR, float)
    fill = bg * (1 - V.GT_FILL_ALPHA) + gt * V.GT_FILL_ALPHA
    ego = _pixel_of(0.0, 0.0, extent, size_px)
    for box in boxes:
        length, width = box[3], box[4]
        # rear half of the centre line and off-axis points inside: the translucent fill
        for u, v in ((-0.25 * length, 0.0), (0.0, 0.25 * width), (0.0, -0.25 * width), (-0.3 * length, 0.25 * width)):
            r, c = _pixel_of(*_box_point(box, u, v), extent, size_px)
            assert np.abs(img[r, c] - fill).max() <= 4, (box, u, v, img[r, c], fill)
        # front half of the centre line: the heading line, drawn in the solid GT colour (catches a 180 deg flip)
        r, c = _pixel_of(*_box_point(box, 0.3 * length, 0.0), extent, size_px)
        assert img[r, c, 1] > img[r, c, 0] + 60 and img[r, c, 0] < fill[0] - 40, (box, img[r, c])
        # just outside every side: background
        for u, v in ((length / 2 + 0.8, 0.0), (-length / 2 - 0.8, 0.0), (0.0, width / 2 + 0.8), (0.0,
                                                                                                 -width / 2 - 0.8)):
            r, c = _pixel_of(*_box_point(box, u, v), extent, size_px)
            if abs(r - ego[0]) > 6 or abs(c - ego[1]) > 6:  # the sensor marker
                assert np.abs(img[r, c] - bg).max() <= 4, (box, u, v, img[r, c])


def test_bev_pixel_coords_match_the_documented_transform():
    rng = np.random.default_rng()
    extent, size_px = 51.2, 800
    xy = rng.uniform(-extent, extent, (100, 2))
    cr = V.bev_pixel_coords(xy, extent, size_px)
    rows_cols = np.array([_pixel_of(x, y, extent, size_px) for x, y in xy])
    # the drawing frame (imshow extent (0, W, H, 0)): pixel c covers [c, c + 1]
    np.testing.assert_array_equal(np.floor(cr[:, 0]).astype(int), rows_cols[:, 1])
    np.testing.assert_array_equal(np.floor(cr[:, 1]).astype(int), rows_cols[:, 0])


def test_bev_corners_are_the_rotated_rectangle():
    rng = np.random.default_rng()
    box = _random_boxes(rng, n=1)[0]
    corners = V.bev_corners(box[None])[0]
    expected = [_box_point(box, su * box[3] / 2, sv * box[4] / 2) for su, sv in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    np.testing.assert_allclose(corners, np.array(expected), atol=1e-9)


def _pinhole(f, w, h):
    """lidar2img of a camera at the LiDAR origin looking along +x (image x = -y, image y = -z)."""
    lidar2cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    k = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    return k @ lidar2cam


def test_camera_boxes_land_where_lidar2img_sends_their_corners():
    rng = np.random.default_rng()
    h, w = 300, 400
    l2i = _pinhole(300.0, w, h)
    box = np.array([rng.uniform(12, 18), rng.uniform(-2, 2), -1.0, 4.2, 1.9, 1.6, rng.uniform(-np.pi, np.pi)])
    behind = np.array([-10.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0])  # behind the camera: not drawn
    grey = np.full((h, w, 3), 90, np.uint8)
    img = V.render_camera(grey, l2i, np.stack([box, behind]))
    changed = np.abs(img.astype(int) - grey).max(-1) > 25
    # corners by hand: bottom-centre box, yaw about z
    pts = []
    for su in (-1, 1):
        for sv in (-1, 1):
            for z in (box[2], box[2] + box[5]):
                x, y = _box_point(box, su * box[3] / 2, sv * box[4] / 2)
                cam = np.array([-y, -z, x])  # camera frame of _pinhole
                pts.append([300.0 * cam[0] / cam[2] + w / 2, 300.0 * cam[1] / cam[2] + h / 2])
    pts = np.array(pts)
    assert changed.any()
    rows, cols = np.nonzero(changed)
    pad = 3
    assert cols.min() >= pts[:, 0].min() - pad and cols.max() <= pts[:, 0].max() + pad
    assert rows.min() >= pts[:, 1].min() - pad and rows.max() <= pts[:, 1].max() + pad
    for u, v in pts:  # a drawn edge passes through every projected corner
        r, q = int(round(v)), int(round(u))
        assert changed[max(r - 2, 0):r + 3, max(q - 2, 0):q + 3].any(), (u, v)
    assert (np.abs(img[changed].astype(int) - np.array(V.GT_COLOR)).sum(-1) < 120).mean() > 0.3


def test_bad_boxes_are_named():
    with pytest.raises(ValueError, match='at least 7 values'):
        V.render_bev(None, np.zeros((2, 5)))
