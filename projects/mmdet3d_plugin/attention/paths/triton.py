"""The ``triton`` path: the fused kernel of ``triton_kernels.py``.

The kernel module imports ``triton`` at its top, so it is imported lazily
here (``load_triton_module``): the package imports without Triton and the
other paths run. Arguments as in ``paths/__init__.py``; no attn_mask and no
dropout.
"""
import importlib
import math
import os
from typing import Optional

import torch
from torch import Tensor

from ..path_inputs import check_geometry, check_qkv

KERNEL_MODULE = __package__ + '.triton_kernels'
KERNEL_FILE = 'projects/mmdet3d_plugin/attention/paths/triton_kernels.py'


def interpreting() -> bool:
    """TRITON_INTERPRET=1: kernels run on CPU tensors through the interpreter."""
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def triton_is_available(device) -> bool:
    """True when triton imports and ``device`` is CUDA, or TRITON_INTERPRET=1
    and ``device`` is CPU."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_available()
    return device.type == 'cpu' and interpreting()


_LOADED = {}  # KERNEL_MODULE -> the imported kernel module (the path's calls skip the import machinery)
_CUDA_READY = set()  # CUDA devices on which triton_is_available said yes


def load_triton_module(required: bool):
    """The kernel module, or None (when not ``required``) if it fails to import.

    Raises a RuntimeError naming the kernel file when ``required``.
    """
    mod = _LOADED.get(KERNEL_MODULE)
    if mod is not None:
        return mod
    try:
        mod = _LOADED[KERNEL_MODULE] = importlib.import_module(KERNEL_MODULE)
        return mod
    except ImportError as err:
        if not required:
            return None
        raise RuntimeError(f"bias_mode='triton' needs {KERNEL_FILE} (and the triton "
                           f'package), which failed to import: {err!r}. Use '
                           "bias_mode='exact' or 'auto'.") from err


def triton_path_attention(q: Tensor,
                          k: Tensor,
                          v: Tensor,
                          r: Tensor,
                          o: Tensor,
                          d: Tensor,
                          bias_scale: Tensor,
                          length_scale: float = 10.0,
                          *,
                          attn_mask: Optional[Tensor] = None,
                          dropout_p: float = 0.0) -> Tensor:
    """Fused Triton kernel; coordinates in metres. The kernels map points and lines to the key frame
    ((x - centroid of the line origins) / ``length_scale``, fp32) themselves; the key-side factors are built
    once per (o, d) tensors (``key_factors``: the decoder layers share them). Inputs are checked here
    (``_checked_inputs``), not again by the kernel."""
    mod = _checked_inputs(q, k, v, r, o, d, bias_scale)
    if attn_mask is not None or dropout_p > 0:
        raise ValueError("bias_mode='triton' supports neither attn_mask/"
                         "key_padding_mask nor attention dropout; use "
                         "bias_mode='exact' (or 'auto')")
    split = mod.split_factors('auto', q.dtype)
    keys = mod.key_factors(o, d, split, length_scale, centred=True)
    return mod.attention_with_keys(q, k, v, r.float(), bias_scale.float(), keys, 1.0 / math.sqrt(q.shape[-1]))


_CHECKED_SIGNATURES = set()  # input signatures (``_signature``) whose checks passed
_MAX_CHECKED_SIGNATURES = 1024  # then the set starts over (a training run adds one per new query count)


def _signature(q, k, v, r, o, d, bias_scale) -> Optional[tuple]:
    """Everything the path's checks read of the inputs: shapes, dtypes, devices, and the strides and storage offsets
    of q, k, v (their int32 offsets); None when an input is missing, which the checks report."""
    try:
        return (q.shape, k.shape, v.shape, r.shape, o.shape, d.shape, bias_scale.shape, q.stride(), k.stride(),
                v.stride(), q.storage_offset(), k.storage_offset(), v.storage_offset(), q.dtype, k.dtype, v.dtype,
                r.dtype, o.dtype, d.dtype, bias_scale.dtype, q.device, k.device, v.device, r.device, o.device, d.device,
                bias_scale.device)
    except AttributeError:
        return None


def _checked_inputs(q, k, v, r, o, d, bias_scale):
    """The kernel module, after checking the inputs.

    The first call with a signature (``_signature``) runs every check: path_inputs' shapes and devices, Triton on
    the device, the kernels' limits and int32 offsets; later calls with it run none. On the GPU that host work
    comes before the kernel's launch, so it is GPU idle time (the checks took ~40 us of a ~300 us inference-shape
    call on a slow host: docs/benchmarks/README.md)."""
    sig = _signature(q, k, v, r, o, d, bias_scale)
    mod = _LOADED.get(KERNEL_MODULE)
    if mod is not None and sig in _CHECKED_SIGNATURES:
        return mod
    check_qkv(q, k, v)
    check_geometry(q, k, r, o, d, bias_scale)
    mod = _ready_kernel_module(q.device)
    mod.check_kernel_limits(q, k, v)
    if len(_CHECKED_SIGNATURES) >= _MAX_CHECKED_SIGNATURES:
        _CHECKED_SIGNATURES.clear()
    _CHECKED_SIGNATURES.add(sig)
    return mod


def _ready_kernel_module(device: torch.device):
    """The kernel module (``load_triton_module`` keeps it), after checking that Triton runs on ``device``
    (remembered per CUDA device: the path's calls then skip that check)."""
    mod = load_triton_module(required=True)
    if device not in _CUDA_READY:
        if not triton_is_available(device):
            raise RuntimeError(f'Triton is not available for device {device} '
                               '(needs CUDA, or TRITON_INTERPRET=1 on CPU)')
        if device.type == 'cuda':
            _CUDA_READY.add(device)
    return mod
