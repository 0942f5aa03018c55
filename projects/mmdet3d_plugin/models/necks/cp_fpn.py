"""CPFPN: the FPN of PETR / CMT with a 3x3 output conv on the finest level only.

mmdet's FPN puts a 3x3 ``fpn_conv`` on every level; CMT's head reads only the
finest (stride-16) level, so the other 3x3 convs would get no gradient, which
breaks DDP without ``find_unused_parameters`` and activation checkpointing.
CPFPN drops them: level 0 = fpn_conv(lateral_0 + up(level 1)), level i > 0 =
lateral_i + up(level i+1) (top-down sum, no 3x3 conv). State-dict keys match
CMT checkpoints: ``lateral_convs.{i}.conv.*`` and ``fpn_convs.0.conv.*``.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from mmdet3d.registry import MODELS


class CPFPN(BaseModule):
    """Registered as ``CmtCPFPN`` and, unless another project already took
    the name, as ``CPFPN``.

    Args:
        in_channels: channels of each input level, finest first
            (``[768, 1024]`` for VoVNet stage4/5, ``[1024, 2048]`` for R50 C4/C5).
        out_channels: channels of every output level.
        num_outs: number of outputs (>= len(in_channels)); extra coarser levels
            are 1x1 max-pools with stride 2 of the last one.
        conv_cfg, norm_cfg, act_cfg: for all convs (mmcv ConvModule).
        no_norm_on_lateral: no norm layer on the 1x1 lateral convs.
        upsample_cfg: ``F.interpolate`` kwargs for the top-down path; without
            ``scale_factor`` each level is resized to the finer level's size.

    Forward: tuple of (B, in_channels[i], H_i, W_i) -> tuple of ``num_outs``
    tensors (B, out_channels, H_i, W_i).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_outs: int,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 no_norm_on_lateral: bool = False,
                 upsample_cfg: dict = dict(mode='nearest'),
                 init_cfg: Optional[dict] = dict(type='Xavier', layer='Conv2d', distribution='uniform')):
        super().__init__(init_cfg)
        if not isinstance(in_channels, (list, tuple)) or not in_channels:
            raise ValueError(f'CPFPN: in_channels must be a non-empty list of '
                             f'ints, got {in_channels!r}')
        if num_outs < len(in_channels):
            raise ValueError(f'CPFPN: num_outs ({num_outs}) must be >= '
                             f'len(in_channels) ({len(in_channels)})')
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.upsample_cfg = dict(upsample_cfg)
        self.lateral_convs = nn.ModuleList(
            ConvModule(
                c,
                out_channels,
                1,
                conv_cfg=conv_cfg,
                norm_cfg=None if no_norm_on_lateral else norm_cfg,
                act_cfg=act_cfg,
                inplace=False) for c in self.in_channels)
        self.fpn_convs = nn.ModuleList([
            ConvModule(
                out_channels,
                out_channels,
                3,
                padding=1,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                inplace=False)
        ])

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'CPFPN: got {len(inputs)} input levels with shapes '
                             f'{[tuple(x.shape) for x in inputs]}, expected '
                             f'{len(self.in_channels)} with channels {self.in_channels}')
        laterals: List[torch.Tensor] = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        outs = [self.fpn_convs[0](laterals[0])] + laterals[1:]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)


MODELS.register_module(name='CmtCPFPN', module=CPFPN)
if 'CPFPN' not in MODELS.module_dict:
    MODELS.register_module(name='CPFPN', module=CPFPN)
