"""VoVNetV2 image backbone (VoVNet with eSE attention and identity residuals).

Architecture of Lee & Park, "CenterMask: Real-Time Anchor-Free Instance
Segmentation" (CVPR 2020) as used by DD3D / PETR / CMT: a 3-conv stem (stride
4) followed by four One-Shot-Aggregation (OSA) stages ``stage2..stage5``
(strides 4, 8, 16, 32). Each OSA block runs ``layers_per_block`` 3x3 convs in
sequence, concatenates the block input with every conv output, fuses them with
a 1x1 conv, applies effective Squeeze-Excitation (eSE) and, for every block of
a stage after the first, adds the block input (identity residual).

Module names follow the common VoVNet checkpoints
(``stem.stem_1/conv.weight``, ``stage2.OSA2_1.layers.0.OSA2_1_0/conv.weight``,
``stage4.OSA4_2.concat.OSA4_2_concat/norm.running_mean``,
``stage5.OSA5_3.ese.fc.bias``, ...), so ``fcos3d_vovnet_imgbackbone-remapped.pth``
loads without renaming (its keys carry an ``img_backbone.`` prefix: use it as
``load_from`` or give ``prefix='img_backbone.'`` in ``init_cfg``).

Like those checkpoints, every OSA block has an eSE module (the published
VoVNetV2 / timm variant puts eSE only on the last block of a stage). V-99-eSE
therefore has 69,523,520 parameters here (timm's ``ese_vovnet99b`` backbone:
62,174,272).
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from mmdet3d.registry import MODELS
from ..utils.pretrained import check_pretrained_path

STAGE_NAMES = ('stage2', 'stage3', 'stage4', 'stage5')


@dataclass(frozen=True)
class VoVNetSpec:
    """Channel layout of one VoVNet variant.

    stem_channels: output channels of the three stem convs.
    stage_mid_channels: channels of the 3x3 convs inside each OSA block, per stage.
    stage_out_channels: output channels of each stage (the 1x1 concat conv).
    layers_per_block: 3x3 convs per OSA block.
    blocks_per_stage: OSA blocks per stage.
    depthwise: 3x3 convs are depthwise-separable (dw 3x3 + pw 1x1).
    ese: every OSA block ends with eSE attention.
    """
    stem_channels: Tuple[int, int, int]
    stage_mid_channels: Tuple[int, int, int, int]
    stage_out_channels: Tuple[int, int, int, int]
    layers_per_block: int
    blocks_per_stage: Tuple[int, int, int, int]
    depthwise: bool
    ese: bool = True


_SLIM = dict(stage_mid_channels=(64, 80, 96, 112), stage_out_channels=(112, 256, 384, 512))
_WIDE = dict(stage_mid_channels=(128, 160, 192, 224), stage_out_channels=(256, 512, 768, 1024))

VOVNET_SPECS: Dict[str, VoVNetSpec] = {
    'V-19-slim-dw-eSE': VoVNetSpec((64, 64, 64),
                                   **_SLIM,
                                   layers_per_block=3,
                                   blocks_per_stage=(1, 1, 1, 1),
                                   depthwise=True),
    'V-19-dw-eSE': VoVNetSpec((64, 64, 64), **_WIDE, layers_per_block=3, blocks_per_stage=(1, 1, 1, 1), depthwise=True),
    'V-19-slim-eSE': VoVNetSpec((64, 64, 128),
                                **_SLIM,
                                layers_per_block=3,
                                blocks_per_stage=(1, 1, 1, 1),
                                depthwise=False),
    'V-19-eSE': VoVNetSpec((64, 64, 128), **_WIDE, layers_per_block=3, blocks_per_stage=(1, 1, 1, 1), depthwise=False),
    'V-39-eSE': VoVNetSpec((64, 64, 128), **_WIDE, layers_per_block=5, blocks_per_stage=(1, 1, 2, 2), depthwise=False),
    'V-57-eSE': VoVNetSpec((64, 64, 128), **_WIDE, layers_per_block=5, blocks_per_stage=(1, 1, 4, 3), depthwise=False),
    'V-99-eSE': VoVNetSpec((64, 64, 128), **_WIDE, layers_per_block=5, blocks_per_stage=(1, 3, 9, 3), depthwise=False),
}


def _conv_norm_relu(name: str, in_ch: int, out_ch: int, kernel_size: int, stride: int, norm_cfg: dict) -> List[tuple]:
    """``{name}/conv`` (no bias) -> ``{name}/norm`` -> ``{name}/relu``."""
    return [
        (f'{name}/conv', nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, bias=False)),
        (f'{name}/norm', build_norm_layer(norm_cfg, out_ch)[1]),
        (f'{name}/relu', nn.ReLU(inplace=True)),
    ]


def _dw_sep_norm_relu(name: str, in_ch: int, out_ch: int, stride: int, norm_cfg: dict) -> List[tuple]:
    """Depthwise 3x3 -> pointwise 1x1 -> norm -> ReLU (in_ch == out_ch)."""
    if in_ch != out_ch:
        raise ValueError(f'{name}: depthwise-separable conv needs equal in/out '
                         f'channels, got {in_ch} -> {out_ch}')
    return [
        (f'{name}/dw_conv3x3', nn.Conv2d(in_ch, out_ch, 3, stride, 1, groups=out_ch, bias=False)),
        (f'{name}/pw_conv1x1', nn.Conv2d(in_ch, out_ch, 1, bias=False)),
        (f'{name}/pw_norm', build_norm_layer(norm_cfg, out_ch)[1]),
        (f'{name}/pw_relu', nn.ReLU(inplace=True)),
    ]


class ESEModule(nn.Module):
    """Effective Squeeze-Excitation: x * hardsigmoid(fc(avgpool(x))).

    One 1x1 conv (with bias) on the global average; (N, C, H, W) -> same.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.hardsigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))
        return x * gate


class OSABlock(nn.Module):
    """One-Shot-Aggregation block; (N, in_ch, H, W) -> (N, out_ch, H, W).

    Args:
        name: checkpoint prefix of its convs, e.g. ``'OSA3_2'``.
        identity: add the block input to the output (needs in_ch == out_ch).
        with_cp: recompute the block in backward (activation checkpointing).
    """

    def __init__(self,
                 name: str,
                 in_ch: int,
                 mid_ch: int,
                 out_ch: int,
                 num_layers: int,
                 identity: bool,
                 depthwise: bool,
                 ese: bool,
                 norm_cfg: dict,
                 with_cp: bool = False):
        super().__init__()
        if identity and in_ch != out_ch:
            raise ValueError(f'{name}: identity residual needs in_ch == out_ch, '
                             f'got {in_ch} and {out_ch}')
        self.identity = identity
        self.with_cp = with_cp
        self.conv_reduction = None
        conv_in = in_ch
        if depthwise and in_ch != mid_ch:
            self.conv_reduction = nn.Sequential(
                OrderedDict(_conv_norm_relu(f'{name}_reduction_0', in_ch, mid_ch, 1, 1, norm_cfg)))
            conv_in = mid_ch
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            if depthwise:
                layer = _dw_sep_norm_relu(f'{name}_{i}', mid_ch, mid_ch, 1, norm_cfg)
            else:
                layer = _conv_norm_relu(f'{name}_{i}', conv_in, mid_ch, 3, 1, norm_cfg)
            self.layers.append(nn.Sequential(OrderedDict(layer)))
            conv_in = mid_ch
        self.concat = nn.Sequential(
            OrderedDict(_conv_norm_relu(f'{name}_concat', in_ch + num_layers * mid_ch, out_ch, 1, 1, norm_cfg)))
        self.ese = ESEModule(out_ch) if ese else None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        y = x if self.conv_reduction is None else self.conv_reduction(x)
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        out = self.concat(torch.cat(feats, dim=1))
        if self.ese is not None:
            out = self.ese(out)
        return out + x if self.identity else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and self.training and torch.is_grad_enabled():
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


def _build_stage(stage_num: int, in_ch: int, mid_ch: int, out_ch: int, num_blocks: int, spec: VoVNetSpec,
                 norm_cfg: dict, with_cp: bool) -> nn.Sequential:
    """``stage{n}``: [``Pooling`` (3x3/2 max-pool, ceil) unless n == 2] +
    ``OSA{n}_1 .. OSA{n}_{num_blocks}`` (identity residual from block 2 on)."""
    modules = OrderedDict()
    if stage_num != 2:
        modules['Pooling'] = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
    for b in range(num_blocks):
        name = f'OSA{stage_num}_{b + 1}'
        modules[name] = OSABlock(
            name,
            in_ch if b == 0 else out_ch,
            mid_ch,
            out_ch,
            spec.layers_per_block,
            identity=b > 0,
            depthwise=spec.depthwise,
            ese=spec.ese,
            norm_cfg=norm_cfg,
            with_cp=with_cp)
    return nn.Sequential(modules)


@MODELS.register_module()
class VoVNet(BaseModule):
    """VoVNetV2 backbone (registered as ``VoVNet``).

    Args:
        spec_name: one of ``VOVNET_SPECS`` (e.g. ``'V-99-eSE'``).
        input_ch: image channels.
        out_features: returned levels, any of ``'stem'`` (stride 4),
            ``'stage2'`` (4), ``'stage3'`` (8), ``'stage4'`` (16),
            ``'stage5'`` (32); returned in network order.
        frozen_stages: -1 freezes nothing; k >= 0 freezes the stem and
            ``stage2 .. stage{k+1}`` (params ``requires_grad=False``, kept in
            eval mode).
        norm_eval: keep every norm layer in eval mode during training.
        norm_cfg: mmcv norm config for all norm layers.
        with_cp: activation checkpointing per OSA block.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=PATH)``; a missing
            local file raises FileNotFoundError in ``init_weights``.

    Forward: (N, input_ch, H, W) -> tuple of (N, C_l, H_l, W_l), one per level
    of ``out_features``, with C_l = ``self.out_channels[l]`` and
    H_l = H / ``self.out_strides[l]`` when H is divisible by it (stride-2 convs
    and ceil-mode max-pools round up otherwise).
    """

    # Config key named in the missing-checkpoint error.
    init_cfg_key = 'model.img_backbone.init_cfg'

    def __init__(self,
                 spec_name: str = 'V-99-eSE',
                 input_ch: int = 3,
                 out_features: Sequence[str] = STAGE_NAMES,
                 frozen_stages: int = -1,
                 norm_eval: bool = True,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if spec_name not in VOVNET_SPECS:
            raise ValueError(f'VoVNet: unknown spec_name {spec_name!r}; expected '
                             f'one of {sorted(VOVNET_SPECS)}')
        if isinstance(out_features, str):
            out_features = (out_features, )
        valid = ('stem', ) + STAGE_NAMES
        bad = [f for f in out_features if f not in valid]
        if bad or not out_features:
            raise ValueError(f'VoVNet: out_features {tuple(out_features)!r} '
                             f'must be a non-empty subset of {valid}')
        if not -1 <= frozen_stages <= len(STAGE_NAMES):
            raise ValueError(f'VoVNet: frozen_stages must be in [-1, '
                             f'{len(STAGE_NAMES)}], got {frozen_stages}')
        spec = VOVNET_SPECS[spec_name]
        self.spec_name = spec_name
        self.spec = spec
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.out_features = tuple(f for f in valid if f in out_features)

        s0, s1, s2 = spec.stem_channels
        stem = _conv_norm_relu('stem_1', input_ch, s0, 3, 2, norm_cfg)
        if spec.depthwise:
            stem += _dw_sep_norm_relu('stem_2', s0, s1, 1, norm_cfg)
            stem += _dw_sep_norm_relu('stem_3', s1, s2, 2, norm_cfg)
        else:
            stem += _conv_norm_relu('stem_2', s0, s1, 3, 1, norm_cfg)
            stem += _conv_norm_relu('stem_3', s1, s2, 3, 2, norm_cfg)
        self.stem = nn.Sequential(OrderedDict(stem))

        channels = {'stem': s2}
        strides = {'stem': 4}
        in_ch, stride = s2, 4
        for i, name in enumerate(STAGE_NAMES):
            out_ch = spec.stage_out_channels[i]
            self.add_module(
                name,
                _build_stage(i + 2, in_ch, spec.stage_mid_channels[i], out_ch, spec.blocks_per_stage[i], spec, norm_cfg,
                             with_cp))
            stride = stride if i == 0 else stride * 2
            channels[name], strides[name] = out_ch, stride
            in_ch = out_ch
        self.out_channels = [channels[f] for f in self.out_features]
        self.out_strides = [strides[f] for f in self.out_features]
        self._freeze_stages()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        x = self.stem(x)
        if 'stem' in self.out_features:
            outs.append(x)
        for name in STAGE_NAMES:
            x = getattr(self, name)(x)
            if name in self.out_features:
                outs.append(x)
        return tuple(outs)

    def init_weights(self):
        if not self._is_init:
            check_pretrained_path(self.init_cfg, key=self.init_cfg_key)
        super().init_weights()

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.stem] + [getattr(self, STAGE_NAMES[i]) for i in range(self.frozen_stages)]

    def _freeze_stages(self):
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        """Train mode, keeping frozen stages (and, with norm_eval, all norm
        layers) in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
