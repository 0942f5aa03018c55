"""TF32 tensor cores for spconv 2's fp32 sparse convolutions, as PyTorch gives them to dense convolutions.

spconv 2 runs fp32 sparse convolutions on CUDA cores (SIMT) unless ``spconv.constants.SPCONV_ALLOW_TF32`` is set;
it reads the flag at every call. On the full voxel0100 model (H200, batch 2) those SIMT kernels were 159 of the
263 ms of GPU time of a training step (``tools/benchmarks/benchmark_model.py --amp config --profile``). PyTorch
runs dense convolutions in TF32 by default (``torch.backends.cudnn.allow_tf32 = True``), and CMT trained on torch
1.9, where TF32 was also the default for the matrix products of mmcv's sparse convolution. ``sparse_conv_tf32``
sets the flag for the duration of a block and restores it: no global state changes.
"""
import contextlib
from typing import Optional

import torch


def resolve_sparse_conv_tf32(setting: Optional[bool]) -> bool:
    """None: follow ``torch.backends.cudnn.allow_tf32`` (PyTorch's switch for convolutions); else the bool."""
    if setting is None:
        return bool(torch.backends.cudnn.allow_tf32)
    if not isinstance(setting, bool):
        raise TypeError(f'model.sparse_conv_tf32 must be None, True or False; got {setting!r}')
    return setting


@contextlib.contextmanager
def sparse_conv_tf32(enabled: bool):
    """Inside the block spconv 2's fp32 convolutions use TF32 when ``enabled``; nothing happens without spconv 2
    (mmcv's sparse convolution follows ``torch.backends.cuda.matmul.allow_tf32``)."""
    try:
        from spconv import constants
    except ImportError:
        yield
        return
    previous = constants.SPCONV_ALLOW_TF32
    constants.SPCONV_ALLOW_TF32 = bool(enabled)
    try:
        yield
    finally:
        constants.SPCONV_ALLOW_TF32 = previous
