"""Per-decoder-layer prediction branches (CMT's ``SeparateTaskHead`` with ``groups = num_layers``).

All L layer outputs are stacked along channels, (B, L*C, Q), and every branch is a grouped Conv1d stack, so
each decoder layer has its own un-shared weights: Conv1d(L*C -> L*hc, groups=L, no bias) -> GroupLayerNorm1d
-> ReLU (x (num_conv - 1)) -> Conv1d(L*hc -> L*out, groups=L). The convolution slides along the query axis:
``final_kernel > 1`` mixes neighbouring queries (a CMT quirk kept for the LiDAR config).
"""
from typing import Dict, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS

INIT_MODES = ('torch_default', 'kaiming_prior')


class GroupLayerNorm1d(nn.Module):
    """LayerNorm over the channels of each group, per position. x (B, G*C, Q) -> same shape. ``eps`` 1e-6 as
    CMT's ``GroupLayerNorm1d`` (cmt_head.py)."""

    def __init__(self, num_channels: int, groups: int, eps: float = 1e-6) -> None:
        super().__init__()
        if num_channels % groups:
            raise ValueError(f'num_channels ({num_channels}) must be divisible by groups ({groups})')
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        B, GC, Q = x.shape
        x = x.view(B, self.groups, GC // self.groups, Q)
        x = (x - x.mean(2, keepdim=True)) / torch.sqrt(x.var(2, unbiased=False, keepdim=True) + self.eps)
        return x.view(B, GC, Q) * self.weight[:, None] + self.bias[:, None]


@MODELS.register_module()
class CmtSeparateTaskHead(BaseModule):
    """Grouped per-layer prediction branches.

    Args:
        in_channels (int): C, decoder width.
        heads (dict): name -> (out_channels, num_conv), e.g. ``center=(2, 2)``, ``cls_logits=(10, 2)``.
        groups (int): L, number of decoder layers.
        head_conv (int): hidden channels per group (CMT: 64).
        final_kernel (int): Conv1d kernel along the query axis (CMT: 1 fusion/camera, 3 LiDAR).
        init_bias (float): bias of the last ``cls_logits`` conv with ``init_mode='kaiming_prior'`` (CMT: -2.19).
        init_mode (str): 'torch_default' keeps PyTorch's default Conv1d init, which is what CMT's models trained
            from (its task heads sit in an ``nn.ModuleList`` that mmcv's ``init_weights`` never enters);
            'kaiming_prior' applies the init CMT's ``SeparateTaskHead`` defines (Kaiming + class prior bias).
    """

    def __init__(self,
                 in_channels: int,
                 heads: Dict[str, Tuple[int, int]],
                 groups: int,
                 head_conv: int = 64,
                 final_kernel: int = 1,
                 init_bias: float = -2.19,
                 init_mode: str = 'torch_default',
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        if init_mode not in INIT_MODES:
            raise ValueError(f'init_mode must be one of {INIT_MODES}, got {init_mode!r}')
        self.groups, self.init_bias, self.init_mode = groups, init_bias, init_mode
        self.out_channels = {name: out for name, (out, _) in heads.items()}
        self.branches = nn.ModuleDict()
        pad = final_kernel // 2
        for name, (out, num_conv) in heads.items():
            layers, c_in = [], in_channels
            for _ in range(num_conv - 1):
                layers += [
                    nn.Conv1d(c_in * groups, head_conv * groups, final_kernel, padding=pad, groups=groups, bias=False),
                    GroupLayerNorm1d(head_conv * groups, groups),
                    nn.ReLU(inplace=True)
                ]
                c_in = head_conv
            layers.append(nn.Conv1d(c_in * groups, out * groups, final_kernel, padding=pad, groups=groups))
            self.branches[name] = nn.Sequential(*layers)

    def init_weights(self) -> None:
        """``init_mode='torch_default'``: nothing, PyTorch's construction-time init stays (CMT's effective init,
        docs/quirks.md #8). ``'kaiming_prior'``: what CMT's ``SeparateTaskHead.init_weights`` would do if it
        were called: mmcv ``Kaiming`` (normal, fan_out, relu, bias 0) on every Conv1d, then the last
        ``cls_logits`` bias = ``init_bias``."""
        if self.init_mode == 'torch_default':
            return
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if 'cls_logits' in self.branches:
            nn.init.constant_(self.branches['cls_logits'][-1].bias, self.init_bias)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """x (L, B, Q, C) -> {name: (L, B, Q, out)}."""
        L, B, Q, C = x.shape
        if L != self.groups:
            raise ValueError(f'expected {self.groups} decoder layers, got {L}')
        x = x.permute(1, 0, 3, 2).reshape(B, L * C, Q)
        outs = {}
        for name, branch in self.branches.items():
            y = branch(x)  # (B, L*out, Q)
            outs[name] = y.view(B, L, -1, Q).permute(1, 0, 3, 2)
        return outs
