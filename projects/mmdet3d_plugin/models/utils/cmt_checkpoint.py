"""Map a checkpoint of CMT's original code (junjie18/CMT, mmdet3d 1.0.0rc5 / mmcv 1.x) to this port's model.

Where the module trees differ (everything else keeps its name), CMT -> here:
- ``pts_bbox_head.task_heads.0.<branch>.*`` (a ModuleList of one ``SeparateTaskHead`` per task; CMT's configs have
  one task) -> ``pts_bbox_head.task_head.branches.<branch>.*``;
- ``...decoder.layers.N.attentions.0.attn.*`` (mmcv ``MultiheadAttention``) -> ``...layers.N.self_attn.attn.*``;
- ``...decoder.layers.N.attentions.1.attn.*`` (``PETRMultiheadFlashAttention`` -> ``FlashMHA``) ->
  ``...layers.N.cross_attn.attn.*``;
- ``...decoder.layers.N.ffns.0.layers.*`` -> ``...layers.N.ffn.layers.*``.

``norms.{0,1,2}``, ``decoder.post_norm``, ``shared_conv``, ``bev_embedding``, ``rv_embedding``,
``reference_points``, the image backbone/neck and the LiDAR branch keep their names. The task-head tensors need no
reshaping: CMT's ``SeparateTaskHead`` already stacks the decoder layers as the groups of grouped ``Conv1d`` /
``GroupLayerNorm1d`` (``groups = num_layers``, input ``b (n c) q``), exactly as ``CmtSeparateTaskHead`` does.

Sparse-convolution kernels are converted to the layout of the target model's backend (mmcv or spconv 2,
``sparse_conv_layout.py``). Parameters CMT does not have are synthesised and reported: the geometric bias's
per-head ``cross_attn.bias_scale`` is set to 0, so a model with ``use_bias=True`` starts exactly as CMT's attention.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .sparse_conv_layout import convert_sparse_layout, installed_backend_layout, model_sparse_layout, sparse_conv_specs

# (pattern, replacement) applied in order to every CMT key (after a leading 'module.' is removed).
CMT_KEY_RENAMES: Tuple[Tuple[str, str], ...] = (
    (r'^pts_bbox_head\.task_heads\.0\.', 'pts_bbox_head.task_head.branches.'),
    (r'(\.decoder\.layers\.\d+\.)attentions\.0\.', r'\1self_attn.'),
    (r'(\.decoder\.layers\.\d+\.)attentions\.1\.', r'\1cross_attn.'),
    (r'(\.decoder\.layers\.\d+\.)ffns\.0\.', r'\1ffn.'),
)
# Parameters of this model that CMT has no counterpart for, with the value given to them.
_SYNTHESISED = ((re.compile(r'\.cross_attn\.bias_scale$'),
                 "zeros: the geometric bias starts switched off (CMT's attention)"), )


class CmtConversion(NamedTuple):
    """Result of :func:`convert_cmt_state_dict`."""
    state_dict: 'OrderedDict[str, Tensor]'  # ready for ``model.load_state_dict(strict=True)``
    renamed: List[Tuple[str, str]]  # (CMT key, new key) for keys whose name changed
    synthesised: Dict[str, str]  # new key -> how its value was set
    sparse_layout: Tuple[Optional[str], Optional[str]]  # (source, written) sparse-conv layout; None without any


def rename_cmt_key(key: str) -> str:
    """CMT state-dict key -> this port's key (identity for keys that keep their name)."""
    if key.startswith('module.'):
        key = key[len('module.'):]
    for pattern, repl in CMT_KEY_RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def extract_state_dict(checkpoint, source: str = 'checkpoint') -> Mapping[str, Tensor]:
    """The model state dict of a loaded checkpoint (``{'state_dict': ...}``, ``{'model': ...}`` or a bare dict)."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{source}: expected a dict (a checkpoint or a state dict), got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return checkpoint[key]
    if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
        return checkpoint
    raise ValueError(f'{source}: no "state_dict" entry and not a state dict of tensors; top-level keys: '
                     f'{sorted(checkpoint)[:10]}')


def _summary(keys, limit: int = 12) -> str:
    keys = sorted(keys)
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def convert_cmt_state_dict(cmt_state_dict: Mapping[str, Tensor],
                           model: nn.Module,
                           sparse_src_layout: Optional[str] = None,
                           sparse_dst_layout: Optional[str] = None) -> CmtConversion:
    """CMT state dict -> a state dict that ``model`` loads with ``strict=True``.

    Args:
        cmt_state_dict: CMT's model state dict (keys as in its checkpoints' ``state_dict``).
        model: the target model, e.g. built from ``projects/configs/cmt_compat/*.py`` (weights are not used, only
            the key names, shapes and sparse-conv layout).
        sparse_src_layout: layout of CMT's sparse-conv kernels; None detects it from their shapes.
        sparse_dst_layout: layout to write; None = the layout of ``model`` (its installed backend).

    Raises:
        ValueError: naming the CMT keys that have no place in the model, the model keys that CMT lacks (other than
        the synthesised ones), shape mismatches, or a multi-task CMT head.
    """
    multi_task = [k for k in cmt_state_dict if re.match(r'^(module\.)?pts_bbox_head\.task_heads\.[1-9]', k)]
    if multi_task:
        raise ValueError(f'the checkpoint has several CMT task heads ({_summary(multi_task, 3)}); this port has one '
                         'head for all classes (as every CMT config)')
    renamed, converted = [], OrderedDict()
    for key, value in cmt_state_dict.items():
        new = rename_cmt_key(key)
        if new in converted:
            raise ValueError(f'two checkpoint keys map to {new!r}')
        if new != key:
            renamed.append((key, new))
        converted[new] = value

    target = model.state_dict()
    unexpected = [k for k in converted if k not in target]
    if unexpected:
        raise ValueError(f'{len(unexpected)} checkpoint keys have no counterpart in the model (wrong config? CMT '
                         f'voxel0100 R50 -> cmt_voxel0100_r50_800x320.py, voxel0075 VoVNet -> '
                         f'cmt_voxel0075_vov_1600x640.py): {_summary(unexpected)}')

    specs = {k: s for k, s in sparse_conv_specs(model).items() if k in converted}
    src = dst = None
    if specs:
        dst = sparse_dst_layout or model_sparse_layout(model)
        converted, src = convert_sparse_layout(converted, specs, dst, src=sparse_src_layout)

    synthesised = {}
    for key, value in target.items():
        if key in converted:
            continue
        rule = next((how for pattern, how in _SYNTHESISED if pattern.search(key)), None)
        if rule is not None:
            converted[key] = torch.zeros_like(value)
            synthesised[key] = rule
    missing = [k for k in target if k not in converted]
    if missing:
        raise ValueError(f'{len(missing)} model keys are not in the checkpoint: {_summary(missing)}')
    mismatched = [
        f'{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(v.shape)}' for k, v in target.items()
        if k not in specs and tuple(converted[k].shape) != tuple(v.shape)
    ]
    if mismatched:
        raise ValueError(f'{len(mismatched)} shape mismatches (wrong config?): {"; ".join(mismatched[:8])}')
    # model key order (readable checkpoints), keeping the sparse-layout metadata
    ordered = OrderedDict((k, converted[k]) for k in target)
    ordered._metadata = getattr(converted, '_metadata', OrderedDict())
    return CmtConversion(ordered, renamed, synthesised, (src, dst))


def check_backend_layout(model: nn.Module) -> str:
    """The model's sparse-conv layout, checked against the installed backend (they agree unless the model was
    built before spconv was made importable)."""
    layout = model_sparse_layout(model)
    backend = installed_backend_layout()
    if layout != backend:
        raise RuntimeError(f'the model stores sparse-conv kernels as {layout!r} but the installed backend is '
                           f'{backend!r}')
    return layout


def build_model(config: str) -> nn.Module:
    """The model of the config file ``config``, built on the CPU without weights (the converters check keys and
    shapes against it)."""
    from mmengine.config import Config

    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return MODELS.build(Config.fromfile(config).model)
