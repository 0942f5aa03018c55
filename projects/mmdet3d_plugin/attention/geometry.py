"""Geometry of the attention bias: queries are 3D points, keys are 3D lines.

All coordinates are metres in the LiDAR frame. A key line is an origin ``o``
and a unit direction ``d``; the squared distance of a point ``r`` to it is
``dist2(r, line) = |r - o|^2 - ((r - o) . d)^2``. It factors exactly into a
rank-10 product ``query_factors(r) @ key_factors(o, d)^T``.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

FACTOR_RANK = 10


def bev_key_lines(pc_range: Sequence[float],
                  bev_hw: Tuple[int, int],
                  device: Optional[torch.device] = None,
                  dtype: torch.dtype = torch.float32) -> Tuple[Tensor, Tensor]:
    """Vertical lines through the cell centres of a BEV feature map.

    Args:
        pc_range: [x_min, y_min, z_min, x_max, y_max, z_max] in metres.
        bev_hw: (H, W) of a (B, C, H, W) BEV map, H along y and W along x.

    Returns:
        o, d: (H*W, 3) each, in the order of ``feat.flatten(2)`` (row-major
        over (H, W)); o = (cell centre x, cell centre y, 0), d = (0, 0, 1).
    """
    if len(pc_range) != 6:
        raise ValueError('pc_range must be [x_min, y_min, z_min, x_max, '
                         f'y_max, z_max], got {list(pc_range)}')
    if len(bev_hw) != 2 or min(bev_hw) < 1:
        raise ValueError(f'bev_hw must be (H, W) >= 1, got {tuple(bev_hw)}')
    h, w = int(bev_hw[0]), int(bev_hw[1])
    x_min, y_min, _, x_max, y_max, _ = (float(v) for v in pc_range)
    # built on `device` (no host-to-device copy: the head's CUDA graph captures this), in fp64 as everywhere
    xs = x_min + (torch.arange(w, dtype=torch.float64, device=device) + 0.5) * ((x_max - x_min) / w)
    ys = y_min + (torch.arange(h, dtype=torch.float64, device=device) + 0.5) * ((y_max - y_min) / h)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    o = torch.stack([grid_x.flatten(), grid_y.flatten(), torch.zeros_like(grid_x.flatten())], -1)
    d = torch.zeros_like(o)
    d[:, 2] = 1.0
    return o.to(device=device, dtype=dtype), d.to(device=device, dtype=dtype)


def camera_key_lines(lidar2img: Tensor,
                     feat_hw: Tuple[int, int],
                     img_hw: Tuple[int, int],
                     pixel_offset: float = 0.5) -> Tuple[Tensor, Tensor]:
    """Camera rays through the cells of multi-view image feature maps.

    Args:
        lidar2img: (B, N, 4, 4) projection LiDAR metres -> input-image
            pixels (cam2img @ lidar2cam, augmentation included); row 3 gives
            depth, so ``P[:3] @ [x, y, z, 1] = depth * [u, v, 1]``.
        feat_hw: (h, w) of the feature map of each view.
        img_hw: (H, W) of the (padded) network input image.
        pixel_offset: position of the ray's pixel inside its feature cell
            (0.5 = centre, default; 0 = top-left corner).

    Returns:
        o: (B, N*h*w, 3) camera centre in the LiDAR frame (metres).
        d: (B, N*h*w, 3) unit ray direction through pixel
        ``u = (j + pixel_offset) * W / w``, ``v = (i + pixel_offset) * H / h``, pointing to
        positive depth. Token order is the flatten of (N, h, w).
    """
    if lidar2img.dim() != 4 or lidar2img.shape[-2:] != (4, 4):
        raise ValueError('lidar2img must have shape (B, N, 4, 4), got '
                         f'{tuple(lidar2img.shape)}')
    h, w = int(feat_hw[0]), int(feat_hw[1])
    img_h, img_w = float(img_hw[0]), float(img_hw[1])
    b, n = lidar2img.shape[:2]
    proj = lidar2img.to(torch.float64)
    mat = proj[..., :3, :3]  # (B, N, 3, 3)
    mat_inv = torch.linalg.inv_ex(mat)[0]  # inv_ex: no host-side error check (a sync on CUDA)
    centre = -(mat_inv @ proj[..., :3, 3:4]).squeeze(-1)  # (B, N, 3)

    dev = lidar2img.device
    us = (torch.arange(w, dtype=torch.float64, device=dev) + pixel_offset) * (img_w / w)
    vs = (torch.arange(h, dtype=torch.float64, device=dev) + pixel_offset) * (img_h / h)
    grid_v, grid_u = torch.meshgrid(vs, us, indexing='ij')
    pix = torch.stack([grid_u, grid_v, torch.ones_like(grid_u)], -1)
    # Ray direction M^-1 [u, v, 1]: the point at depth 1 minus the centre.
    dirs = torch.einsum('bnij,hwj->bnhwi', mat_inv, pix)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    o = centre[:, :, None, None, :].expand(b, n, h, w, 3)
    out_dtype = lidar2img.dtype if lidar2img.is_floating_point() \
        else torch.float32
    return (o.reshape(b, n * h * w, 3).to(out_dtype), dirs.reshape(b, n * h * w, 3).to(out_dtype))


def query_factors(r: Tensor) -> Tensor:
    """phi(r) = [x, y, z, 1, x^2, y^2, z^2, xy, xz, yz]; (..., 3) -> (..., 10).
    """
    # All entries are products p_i p_j of p = [x, y, z, 1]: one outer
    # product and views (3 kernels instead of ~12 on the per-layer path).
    p = torch.cat([r, torch.ones_like(r[..., :1])], -1)
    outer = p[..., :, None] * p[..., None, :]  # (..., 4, 4)
    return torch.cat(
        [
            outer[..., :, 3],  # x, y, z, 1
            torch.diagonal(outer, dim1=-2, dim2=-1)[..., :3],  # x^2, y^2, z^2
            outer[..., 0, 1:3],  # xy, xz
            outer[..., 1, 2:3],  # yz
        ],
        -1)


def key_factors(o: Tensor, d: Tensor) -> Tensor:
    """psi(o, d), (..., 3) each -> (..., 10), with phi(r) . psi = dist2.

    psi = [-2o + 2(o.d)d, |o|^2 - (o.d)^2, 1 - dx^2, 1 - dy^2, 1 - dz^2,
           -2 dx dy, -2 dx dz, -2 dy dz]; exact for the expression
    ``|r - o|^2 - ((r - o) . d)^2`` (d is expected to be unit).
    """
    od = (o * d).sum(-1, keepdim=True)
    lin = -2.0 * o + 2.0 * od * d
    const = (o * o).sum(-1, keepdim=True) - od * od
    dx, dy, dz = d.unbind(-1)
    quad = torch.stack([1.0 - dx * dx, 1.0 - dy * dy, 1.0 - dz * dz, -2.0 * dx * dy, -2.0 * dx * dz, -2.0 * dy * dz],
                       -1)
    return torch.cat([lin, const, quad], -1)


def batched_lines(o: Tensor, d: Tensor) -> Tuple[Tensor, Tensor]:
    """Key lines given as (Nk, 3) as (1, Nk, 3); (Bk, Nk, 3) as they are."""
    return (o[None], d[None]) if o.dim() == 2 else (o, d)


def point_line_dist2(r: Tensor, o: Tensor, d: Tensor) -> Tensor:
    """Dense squared point-to-line distance.

    Args:
        r: (B, Nq, 3) points; o, d: (B, Nk, 3) or (Nk, 3) lines (d unit).

    Returns:
        (B, Nq, Nk) ``|r - o|^2 - ((r - o) . d)^2`` in the units of r squared,
        computed elementwise (no matmul, so TF32 settings cannot change it).
    """
    o, d = batched_lines(o, d)
    dist2 = None
    along = None
    for c in range(3):
        w = r[:, :, None, c] - o[:, None, :, c]
        sq = w * w
        proj = w * d[:, None, :, c]
        dist2 = sq if dist2 is None else dist2 + sq
        along = proj if along is None else along + proj
    return dist2 - along * along
