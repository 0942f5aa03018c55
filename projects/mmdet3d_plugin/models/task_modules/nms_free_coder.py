"""NMS-free top-k decoding of CMT's set predictions (CMT's ``MultiTaskBBoxCoder``, single task)."""
from typing import Optional, Sequence

import torch
from torch import Tensor

from mmdet3d.registry import TASK_UTILS
from .box_codec import decode_boxes


@TASK_UTILS.register_module()
class CmtNMSFreeCoder:
    """Top-k over all (query, class) sigmoid scores, decode, filter by centre range.

    Args:
        post_center_range (list[float]): [x_min, y_min, z_min, x_max, y_max, z_max] metres kept.
        max_num (int): k of the top-k (CMT: 300).
        score_threshold (float, optional): drop scores below it (CMT: none).
        num_classes (int): number of classes.
    """

    def __init__(self,
                 post_center_range: Optional[Sequence[float]] = None,
                 max_num: int = 300,
                 score_threshold: Optional[float] = None,
                 num_classes: int = 10) -> None:
        self.post_center_range = post_center_range
        self.max_num = max_num
        self.score_threshold = score_threshold
        self.num_classes = num_classes

    def decode(self, cls_logits: Tensor, bbox_codes: Tensor) -> dict:
        """cls_logits (Nq, C), bbox_codes (Nq, 10) -> dict(bboxes (K, 9) gravity centre, scores (K,), labels (K,))."""
        if cls_logits.shape[-1] != self.num_classes:
            raise ValueError(f'cls_logits must be (Nq, {self.num_classes}), got {tuple(cls_logits.shape)}')
        scores_all = cls_logits.sigmoid().flatten()
        k = min(self.max_num, scores_all.numel())
        scores, index = scores_all.topk(k)
        labels = index % self.num_classes
        boxes = decode_boxes(bbox_codes[torch.div(index, self.num_classes, rounding_mode='floor')])
        keep = torch.ones_like(scores, dtype=torch.bool)
        if self.score_threshold is not None:
            keep &= scores > self.score_threshold
        if self.post_center_range is not None:
            rng = boxes.new_tensor(self.post_center_range)
            keep &= ((boxes[:, :3] >= rng[:3]) & (boxes[:, :3] <= rng[3:])).all(1)
        return dict(bboxes=boxes[keep], scores=scores[keep], labels=labels[keep])
