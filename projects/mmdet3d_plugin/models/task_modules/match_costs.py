"""Match costs for the Hungarian assigner (TASK_UTILS, ``Cmt``-prefixed names)."""
import torch
from torch import Tensor

from mmdet3d.registry import TASK_UTILS


@TASK_UTILS.register_module()
class CmtBBox3DL1Cost:
    """L1 cost between box codes: ``weight * cdist_1(pred, gt)``.

    Args:
        weight (float): cost weight.
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def __call__(self, bbox_pred: Tensor, gt_bboxes: Tensor) -> Tensor:
        """bbox_pred (Nq, K), gt_bboxes (Ng, K) -> cost (Nq, Ng)."""
        return torch.cdist(bbox_pred, gt_bboxes, p=1) * self.weight
