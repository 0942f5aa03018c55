"""Find which geometric-bias attention path a model uses.

Any submodule with a ``bias_mode`` attribute counts as a bias-attention
module. The plugin's ``GeometricBiasAttention`` has ``bias_mode`` (str, the
configured mode: 'sdpa', 'svd', 'exact', 'triton', 'auto'), ``use_bias``
(bool) and ``resolved_mode`` (the path its last forward ran, e.g. 'triton'
for 'auto' on a GPU; None before the first forward).
"""
from typing import Dict, List, Optional

from torch import nn


def find_bias_attention(model: nn.Module) -> List[Dict]:
    """One entry per module with a ``bias_mode`` attribute.

    Returns:
        list of dict(name=str, type=str, bias_mode=str, use_bias=bool|None,
        resolved_mode=str|None), in ``named_modules`` order (wrappers such as
        DDP included in names).
    """
    found = []
    for name, module in model.named_modules():
        mode = getattr(module, 'bias_mode', None)
        if mode is None:
            continue
        use_bias = getattr(module, 'use_bias', None)
        resolved = getattr(module, 'resolved_mode', None)
        found.append(
            dict(
                name=name,
                type=type(module).__name__,
                bias_mode=str(mode),
                use_bias=None if use_bias is None else bool(use_bias),
                resolved_mode=None if resolved is None else str(resolved)))
    return found


def summarize_bias_mode(modules: List[Dict]) -> Optional[str]:
    """A one-word (or comma-joined) label of the bias paths in ``modules``.

    Each module counts with the path it ran (``resolved_mode``) when known,
    else its configured ``bias_mode``; modules with ``use_bias=False`` count
    as 'none'. ``None`` when the model has no bias-attention module.
    """
    if not modules:
        return None
    modes = sorted({'none' if m['use_bias'] is False else (m.get('resolved_mode') or m['bias_mode']) for m in modules})
    return ','.join(modes)
