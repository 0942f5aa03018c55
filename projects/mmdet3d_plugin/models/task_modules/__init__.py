"""Box codec, match costs, Hungarian assigner and NMS-free coder (TASK_UTILS, ``Cmt`` names)."""
from .box_codec import decode_boxes, encode_boxes, gravity_center_boxes
from .hungarian_assigner import CmtHungarianAssigner3D
from .match_costs import CmtBBox3DL1Cost
from .nms_free_coder import CmtNMSFreeCoder

__all__ = [
    'encode_boxes', 'decode_boxes', 'gravity_center_boxes', 'CmtHungarianAssigner3D', 'CmtBBox3DL1Cost',
    'CmtNMSFreeCoder'
]
