"""Query denoising (DN-DETR style, positions only) as in CMT's ``prepare_for_dn``.

Each GT box becomes ``groups`` extra queries whose reference point is the GT gravity centre plus uniform noise
of up to half the box size per axis (times ``noise_scale``); a DN query whose noise vector (in units of the
half-size) has L2 norm > ``split`` is labelled background. Queries are laid out per sample as
``[group 0 | group 1 | ... | matching queries]`` with ``max_gt`` slots per group (unused slots are padding).
"""
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from ..layers.cmt_position_encoding import normalize_points


@dataclass
class DNQueries:
    """DN queries of one batch. P = pad_size = groups * max_gt."""
    ref_points: Tensor  # (B, P, 3) normalised to pc_range, clamped to [0, 1]
    labels: Tensor  # (B, P) long, background = num_classes
    boxes: Tensor  # (B, P, 7|9) GT target boxes (gravity centre)
    valid: Tensor  # (B, P) bool, False on padding slots
    attn_mask: Tensor  # (P + Nq, P + Nq) bool, True = blocked
    pad_size: int
    groups: int


def dn_attn_mask(pad_size: int, num_query: int, groups: int, device=None) -> Tensor:
    """(P + Nq, P + Nq) bool self-attention mask, True = blocked.

    Matching queries cannot see DN queries; a DN group cannot see other DN groups; DN queries see the matching
    queries and their own group.
    """
    total = pad_size + num_query
    size = pad_size // groups if groups else 1
    idx = torch.arange(total, device=device)
    group = torch.where(idx < pad_size, idx // size, groups)  # DN group of each query; matching queries: `groups`
    return (group[:, None] != group[None, :]) & (idx < pad_size)[None, :]  # a DN key of another group is blocked


def build_dn_queries(gt_boxes: List[Tensor],
                     gt_labels: List[Tensor],
                     num_query: int,
                     pc_range: Tensor,
                     num_classes: int,
                     max_groups: int = 10,
                     noise_scale: float = 1.0,
                     noise_trans: float = 0.0,
                     split: float = 0.75) -> Optional[DNQueries]:
    """gt_boxes: B x (n_b, 7|9) gravity-centre boxes (metres); gt_labels: B x (n_b,).

    Returns None when no sample has GT (CMT divides by zero there) or when one sample has more GT than
    ``num_query`` (zero groups).
    """
    known = [int(b.shape[0]) for b in gt_boxes]
    max_gt = max(known, default=0)
    if max_gt == 0:
        return None
    groups = min(max_groups, num_query // max_gt)
    if groups == 0:
        return None
    pad = max_gt * groups
    device, B = pc_range.device, len(gt_boxes)
    box_dim = next(b.shape[1] for b in gt_boxes if b.shape[0])
    ref = torch.zeros(B, pad, 3, device=device)
    labels = torch.full((B, pad), num_classes, dtype=torch.long, device=device)
    boxes = torch.zeros(B, pad, box_dim, device=device)
    valid = torch.zeros(B, pad, dtype=torch.bool, device=device)
    for b, (box, lab) in enumerate(zip(gt_boxes, gt_labels)):
        n = known[b]
        if n == 0:
            continue
        box = box.to(device=device, dtype=torch.float32)
        centre, half = box[:, :3].repeat(groups, 1), box[:, 3:6].repeat(groups, 1) / 2
        rand = torch.rand_like(centre) * 2 - 1
        centre = centre + rand * (half + noise_trans) * noise_scale
        lab = lab.to(device).long().repeat(groups)
        lab = torch.where(rand.norm(dim=1) > split, num_classes, lab)  # no boolean indexing: no wait for the GPU
        slots = (torch.arange(groups, device=device)[:, None] * max_gt + torch.arange(n, device=device)).flatten()
        ref[b, slots] = normalize_points(centre, pc_range).clamp(0, 1)
        labels[b, slots] = lab
        boxes[b, slots] = box.repeat(groups, 1)
        valid[b, slots] = True
    return DNQueries(ref, labels, boxes, valid, dn_attn_mask(pad, num_query, groups, device), pad, groups)
