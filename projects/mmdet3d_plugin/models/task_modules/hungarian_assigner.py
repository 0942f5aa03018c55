"""One-to-one Hungarian assignment of queries to 3D ground truth (CMT's ``HungarianAssigner3D``)."""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.models.task_modules import AssignResult, BaseAssigner
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mmdet3d.registry import TASK_UTILS
from .box_codec import encode_boxes


@TASK_UTILS.register_module()
class CmtHungarianAssigner3D(BaseAssigner):
    """cost = cls_cost(logits, labels) + reg_cost(code[:, :8] * w, encode(gt)[:, :8] * w).

    Args:
        cls_cost (dict): classification cost cfg, e.g. ``dict(type='mmdet.FocalLossCost', weight=2.0)``.
        reg_cost (dict): box cost cfg, e.g. ``dict(type='CmtBBox3DL1Cost', weight=0.25)``.
        code_weights (list[float], optional): per-code weights (10,); the first 8 enter the cost.
    """

    def __init__(self, cls_cost: dict, reg_cost: dict, code_weights: Optional[Sequence[float]] = None) -> None:
        self.cls_cost = TASK_UTILS.build(cls_cost)
        self.reg_cost = TASK_UTILS.build(reg_cost)
        self.code_weights = None if code_weights is None else torch.tensor(code_weights, dtype=torch.float32)

    def cost_matrix(self, bbox_pred: Tensor, cls_pred: Tensor, gt_bboxes: Tensor, gt_labels: Tensor) -> Tensor:
        """bbox_pred (Nq, 10) CMT codes, cls_pred (Nq, C) logits, gt_bboxes (Ng, 7|9) gravity centre, gt_labels
        (Ng,) -> matching cost (Nq, Ng) on the predictions' device, non-finite entries clamped to +-1e8."""
        cls_cost = self.cls_cost(InstanceData(scores=cls_pred), InstanceData(labels=gt_labels))
        if self.code_weights is None:
            weights = torch.ones(8, device=bbox_pred.device)
        else:
            if self.code_weights.device != bbox_pred.device:  # moved once: a host-to-device copy waits for the GPU
                self.code_weights = self.code_weights.to(bbox_pred.device)
            weights = self.code_weights[:8]
        gt_codes = encode_boxes(gt_bboxes)
        reg_cost = self.reg_cost(bbox_pred[:, :8] * weights, gt_codes[:, :8] * weights)
        return torch.nan_to_num(cls_cost + reg_cost, nan=1e8, posinf=1e8, neginf=-1e8)

    def cost_matrices(self, bbox_pred: Tensor, cls_pred: Tensor, gt_bboxes: Tensor, gt_labels: Tensor) -> Tensor:
        """The cost matrices of L prediction sets (e.g. the decoder layers) against one sample's GT in one
        evaluation: bbox_pred (L, Nq, 10), cls_pred (L, Nq, C) -> (L, Nq, Ng), each [l] equal to
        ``cost_matrix(bbox_pred[l], cls_pred[l], ...)`` up to fp32 rounding (every cost term is computed per query
        row; vectorised kernels may round an element differently by its position)."""
        L, Nq = bbox_pred.shape[:2]
        return self.cost_matrix(bbox_pred.flatten(0, 1), cls_pred.flatten(0, 1), gt_bboxes, gt_labels).view(L, Nq, -1)

    def assign(self, bbox_pred: Tensor, cls_pred: Tensor, gt_bboxes: Tensor, gt_labels: Tensor) -> AssignResult:
        """bbox_pred (Nq, 10) CMT codes, cls_pred (Nq, C) logits, gt_bboxes (Ng, 7|9) gravity centre,
        gt_labels (Ng,). Returns AssignResult with ``gt_inds`` (Nq,): 0 = background, i + 1 = GT i."""
        num_gts, num_queries = gt_bboxes.size(0), bbox_pred.size(0)
        gt_inds = bbox_pred.new_zeros(num_queries, dtype=torch.long)
        labels = bbox_pred.new_full((num_queries, ), -1, dtype=torch.long)
        if num_gts == 0 or num_queries == 0:
            return AssignResult(num_gts, gt_inds, None, labels=labels)
        rows, cols = linear_sum_assignments([self.cost_matrix(bbox_pred, cls_pred, gt_bboxes, gt_labels)])[0]
        rows = torch.from_numpy(rows).to(bbox_pred.device)
        cols = torch.from_numpy(cols).to(bbox_pred.device)
        gt_inds[rows] = cols + 1
        labels[rows] = gt_labels[cols]
        return AssignResult(num_gts, gt_inds, None, labels=labels)


def linear_sum_assignments(costs: List[Tensor]) -> List[Tuple[np.ndarray, np.ndarray]]:
    """scipy's ``linear_sum_assignment`` of every (n_i, m_i) cost matrix, with one device-to-host copy for all of
    them (a copy waits for the GPU: one wait instead of one per matrix). Returns (rows, cols) int64 arrays each."""
    if not costs:
        return []
    host = torch.cat([c.detach().flatten() for c in costs]).cpu().numpy()
    out, start = [], 0
    for c in costs:
        n, m = c.shape
        rows, cols = linear_sum_assignment(host[start:start + n * m].reshape(n, m))
        out.append((rows.astype(np.int64), cols.astype(np.int64)))
        start += n * m
    return out
