"""CMT head, per-layer prediction branches, query denoising."""
from .cmt_head import CmtHead
from .separate_task_head import CmtSeparateTaskHead, GroupLayerNorm1d

__all__ = ['CmtHead', 'CmtSeparateTaskHead', 'GroupLayerNorm1d']
