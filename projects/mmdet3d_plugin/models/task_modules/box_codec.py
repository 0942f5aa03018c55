"""CMT's 10-d box regression layout and its inverse.

Layout (CMT's ``normalize_bbox``): ``(cx, cy, log dx, log dy, cz, log dz, sin yaw, cos yaw, vx, vy)``,
centres are gravity centres in metres (LiDAR frame), sizes in metres.
"""
import torch
from torch import Tensor

# Index of each quantity in the 10-d layout.
CX, CY, LOG_DX, LOG_DY, CZ, LOG_DZ, SIN, COS, VX, VY = range(10)
CODE_SIZE = 10


def encode_boxes(boxes: Tensor) -> Tensor:
    """(N, 7|9) ``(cx, cy, cz, dx, dy, dz, yaw[, vx, vy])`` gravity centre -> (N, 10) CMT layout.

    Boxes without velocity get ``vx = vy = 0``.
    """
    if boxes.shape[-1] not in (7, 9):
        raise ValueError(f'boxes must be (N, 7) or (N, 9) (cx, cy, cz, dx, dy, dz, yaw[, vx, vy]), '
                         f'got {tuple(boxes.shape)}')
    vel = boxes[..., 7:9] if boxes.shape[-1] == 9 else boxes.new_zeros(boxes.shape[:-1] + (2, ))
    return torch.cat([
        boxes[..., 0:2], boxes[..., 3:5].log(), boxes[..., 2:3], boxes[..., 5:6].log(), boxes[..., 6:7].sin(),
        boxes[..., 6:7].cos(), vel
    ],
                     dim=-1)


def decode_boxes(codes: Tensor) -> Tensor:
    """(N, 10) CMT layout -> (N, 9) ``(cx, cy, cz, dx, dy, dz, yaw, vx, vy)`` gravity centre."""
    if codes.shape[-1] != CODE_SIZE:
        raise ValueError(f'codes must be (N, 10) in CMT layout, got {tuple(codes.shape)}')
    yaw = torch.atan2(codes[..., SIN:SIN + 1], codes[..., COS:COS + 1])
    return torch.cat([
        codes[..., CX:CY + 1], codes[..., CZ:CZ + 1], codes[..., LOG_DX:LOG_DY + 1].exp(),
        codes[..., LOG_DZ:LOG_DZ + 1].exp(), yaw, codes[..., VX:VY + 1]
    ],
                     dim=-1)


def gravity_center_boxes(boxes) -> Tensor:
    """mmdet3d ``LiDARInstance3DBoxes`` (bottom centre) -> (N, 7|9) tensor with gravity centre."""
    return torch.cat([boxes.gravity_center, boxes.tensor[:, 3:]], dim=-1)
