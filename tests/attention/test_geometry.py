"""Geometry of the bias: factor identity, rank, BEV and camera key lines."""
import math

import pytest
import torch

from projects.mmdet3d_plugin.attention import (FACTOR_RANK, bev_key_lines, camera_key_lines, key_factors,
                                               point_line_dist2, query_factors)
from projects.mmdet3d_plugin.attention.testing import reference_dist2_fp64


def _random_lines(n, gen, spread=60.0, offset=0.0):
    o = (torch.rand(n, 3, generator=gen, dtype=torch.float64) * 2 - 1) * \
        spread + offset
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=torch.float64), dim=-1)
    return o, d


def _brute_dist2(r, o, d):
    """Distance to the closest point o + t d, t = (r - o) . d, per pair."""
    out = torch.empty(r.shape[0], o.shape[0], dtype=torch.float64)
    for i in range(r.shape[0]):
        for j in range(o.shape[0]):
            t = torch.dot(r[i] - o[j], d[j])
            foot = o[j] + t * d[j]
            out[i, j] = ((r[i] - foot)**2).sum()
    return out


def test_factor_identity_and_rank():
    gen = torch.Generator().manual_seed(1)
    r = (torch.rand(53, 3, generator=gen, dtype=torch.float64) * 2 - 1) * 80
    o, d = _random_lines(71, gen)
    dist2 = _brute_dist2(r[:6], o[:9], d[:9])
    assert torch.allclose(reference_dist2_fp64(r[None, :6], o[:9], d[:9])[0], dist2, rtol=1e-10, atol=1e-8)

    phi, psi = query_factors(r), key_factors(o, d)
    assert phi.shape == (53, FACTOR_RANK) and psi.shape == (71, FACTOR_RANK)
    x, y, z = r[7]
    assert torch.allclose(phi[7],
                          torch.stack([x, y, z,
                                       torch.ones(()).double(), x * x, y * y, z * z, x * y, x * z, y * z]))
    dense = reference_dist2_fp64(r[None], o, d)[0]
    assert torch.allclose(phi @ psi.T, dense, rtol=1e-9, atol=1e-7)
    assert torch.allclose(point_line_dist2(r[None], o, d)[0], dense, rtol=1e-9, atol=1e-7)

    sv = torch.linalg.svdvals(dense)
    assert (sv[FACTOR_RANK:] <= sv[0] * 1e-11).all()
    # Generic lines use all 10 dimensions (the bound is tight).
    assert sv[FACTOR_RANK - 1] > sv[0] * 1e-8


def test_point_line_dist2_fp32_large_coordinates():
    gen = torch.Generator().manual_seed(2)
    r = torch.rand(1, 20, 3, generator=gen, dtype=torch.float64) * 100 + 400
    o, d = _random_lines(30, gen, spread=50.0, offset=420.0)
    ref = reference_dist2_fp64(r, o, d)
    got = point_line_dist2(r.float(), o.float(), d.float())
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), ref, rtol=1e-4, atol=1e-2)


def test_bev_key_lines_hand_example():
    o, d = bev_key_lines([-4.0, -2.0, -5.0, 4.0, 2.0, 3.0], (2, 4))
    # W = 4 cells of 2 m along x, H = 2 cells of 2 m along y; row-major.
    expected_x = torch.tensor([-3.0, -1.0, 1.0, 3.0] * 2)
    expected_y = torch.tensor([-1.0] * 4 + [1.0] * 4)
    assert o.shape == (8, 3) and d.shape == (8, 3)
    assert torch.equal(o[:, 0], expected_x)
    assert torch.equal(o[:, 1], expected_y)
    assert torch.equal(o[:, 2], torch.zeros(8))
    assert torch.equal(d, torch.tensor([[0.0, 0.0, 1.0]]).expand(8, 3))
    # A BEV token's distance is the squared BEV distance (z ignored):
    # token 6 = cell (1, 2), centre (1, 1).
    r = torch.tensor([[[0.5, 0.5, 7.0]]])
    assert torch.allclose(point_line_dist2(r, o, d)[0, 0, 6], torch.tensor(0.5**2 + 0.5**2))


def _pinhole(rot, cam_centre, fx, fy, cx, cy):
    """lidar2img (4, 4): camera at ``cam_centre``, lidar->cam rotation ``rot``.
    """
    k = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]], dtype=torch.float64)
    lidar2cam = torch.eye(4, dtype=torch.float64)
    lidar2cam[:3, :3] = rot
    lidar2cam[:3, 3] = -rot @ cam_centre
    cam2img = torch.eye(4, dtype=torch.float64)
    cam2img[:3, :3] = k
    return cam2img @ lidar2cam


def test_camera_key_lines_identity_rotation():
    centre = torch.tensor([1.0, -2.0, 1.5], dtype=torch.float64)
    # Image 64 x 128 (H x W), stride 16 -> feature map 4 x 8; principal point
    # at the centre of cell (1, 3): u = 3.5 * 16 = 56, v = 1.5 * 16 = 24.
    l2i = _pinhole(torch.eye(3, dtype=torch.float64), centre, 100.0, 80.0, 56.0, 24.0)
    o, d = camera_key_lines(l2i[None, None], (4, 8), (64, 128))
    assert o.shape == (1, 32, 3) and d.shape == (1, 32, 3)
    assert torch.allclose(o[0], centre.expand(32, 3))
    assert torch.allclose(d.norm(dim=-1), torch.ones(1, 32, dtype=torch.float64))
    # The ray through the principal point is the optical axis (+z, forward).
    assert torch.allclose(d[0, 1 * 8 + 3], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-12)
    # Cell (0, 0): pixel (8, 8) -> direction ((8-56)/100, (8-24)/80, 1).
    expected = torch.tensor([-0.48, -0.2, 1.0], dtype=torch.float64)
    assert torch.allclose(d[0, 0], expected / expected.norm(), atol=1e-12)


def test_camera_key_lines_reproject_to_pixels():
    gen = torch.Generator().manual_seed(3)
    views = []
    for n in range(2):
        yaw = 0.7 + n * math.pi / 2
        # Camera looking along lidar (cos yaw, sin yaw, 0): x right, y down.
        fwd = torch.tensor([math.cos(yaw), math.sin(yaw), 0.0], dtype=torch.float64)
        down = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
        right = torch.linalg.cross(down, fwd)
        rot = torch.stack([right, down, fwd])
        views.append(_pinhole(rot, torch.rand(3, generator=gen, dtype=torch.float64), 500.0, 480.0, 200.0, 90.0))
    l2i = torch.stack(views)[None].repeat(2, 1, 1, 1)
    l2i[1, :, :2] *= 0.5  # a resized second sample: pixels halve
    h, w, img_h, img_w = 3, 5, 96, 160
    o, d = camera_key_lines(l2i.float(), (h, w), (img_h, img_w))
    assert o.shape == (2, 2 * h * w, 3) and o.dtype == torch.float32
    for b in range(2):
        for n in range(2):
            for i in range(h):
                for j in range(w):
                    t = n * h * w + i * w + j
                    for depth in (3.0, 40.0):
                        p = o[b, t].double() + depth * d[b, t].double()
                        uvz = l2i[b, n].double() @ torch.cat([p, torch.ones(1, dtype=torch.float64)])
                        assert uvz[2] > 0  # in front of the camera
                        uv = uvz[:2] / uvz[2]
                        expected = torch.tensor([(j + 0.5) * img_w / w, (i + 0.5) * img_h / h], dtype=torch.float64)
                        assert torch.allclose(uv, expected, atol=2e-3)


def test_geometry_bad_input():
    with pytest.raises(ValueError, match='pc_range'):
        bev_key_lines([0, 0, 1, 1], (2, 2))
    with pytest.raises(ValueError, match='lidar2img'):
        camera_key_lines(torch.eye(4)[None], (2, 2), (8, 8))
