"""Find which geometric-bias attention path a model uses.

Any submodule with a ``bias_mode`` attribute (the plugin's bias-attention
module has ``bias_mode`` (str: 'sdpa', 'svd', 'exact', 'triton', 'auto') and
``use_bias`` (bool)) counts as a bias-attention module.
"""
from typing import Dict, List, Optional

from torch import nn


def find_bias_attention(model: nn.Module) -> List[Dict]:
    """One entry per module with a ``bias_mode`` attribute.

    Returns:
        list of dict(name=str, type=str, bias_mode=str, use_bias=bool|None),
        in ``named_modules`` order (wrappers such as DDP included in names).
    """
    found = []
    for name, module in model.named_modules():
        mode = getattr(module, 'bias_mode', None)
        if mode is None:
            continue
        use_bias = getattr(module, 'use_bias', None)
        found.append(
            dict(
                name=name,
                type=type(module).__name__,
                bias_mode=str(mode),
                use_bias=None if use_bias is None else bool(use_bias)))
    return found


def summarize_bias_mode(modules: List[Dict]) -> Optional[str]:
    """A one-word (or comma-joined) label of the bias paths in ``modules``.

    Modules with ``use_bias=False`` count as 'none'. ``None`` when the model
    has no bias-attention module.
    """
    if not modules:
        return None
    modes = sorted({
        'none' if m['use_bias'] is False else m['bias_mode']
        for m in modules
    })
    return ','.join(modes)
