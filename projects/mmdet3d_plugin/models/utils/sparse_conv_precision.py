"""Precision of the sparse middle encoder: TF32 for spconv 2's fp32 convolutions (training and inference), and an
opt-in fp16 copy of the encoder for inference.

TF32 tensor cores for spconv 2's fp32 sparse convolutions, as PyTorch gives them to dense convolutions.

spconv 2 runs fp32 sparse convolutions on CUDA cores (SIMT) unless ``spconv.constants.SPCONV_ALLOW_TF32`` is set;
it reads the flag at every call. On the full voxel0100 model (H200, batch 2) those SIMT kernels were 159 of the
263 ms of GPU time of a training step (``tools/benchmarks/benchmark_model.py --amp config --profile``). PyTorch
runs dense convolutions in TF32 by default (``torch.backends.cudnn.allow_tf32 = True``), and CMT trained on torch
1.9, where TF32 was also the default for the matrix products of mmcv's sparse convolution. ``sparse_conv_tf32``
sets the flag for the duration of a block (the encoder's forward) and restores it; spconv's backward reads it again,
so ``sparse_conv_tf32_backward`` sets it from the moment the gradient reaches the encoder's output until the end of
that backward pass (a profile with the forward scope alone showed the backward on SIMT fp32 kernels: 119 of 225 ms of
GPU time of a full-size training step). No global state changes outside those two spans.
"""
import contextlib
from typing import Dict, Optional

import torch
from torch import Tensor, nn


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


def sparse_conv_tf32_backward(out: Tensor, enabled: bool) -> Tensor:
    """Returns ``out`` (the middle encoder's output) with a gradient hook that sets spconv 2's TF32 flag to
    ``enabled`` when the backward pass reaches it, i.e. before the encoder's own backward, and queues the flag's
    restoration for the end of that backward pass. Nothing without spconv 2 or without a gradient."""
    try:
        from spconv import constants
    except ImportError:
        return out
    if not out.requires_grad:
        return out

    def set_for_backward(grad: Tensor) -> Tensor:
        previous = constants.SPCONV_ALLOW_TF32
        constants.SPCONV_ALLOW_TF32 = bool(enabled)

        def restore() -> None:
            constants.SPCONV_ALLOW_TF32 = previous

        torch.autograd.Variable._execution_engine.queue_callback(restore)
        return grad

    out.register_hook(set_for_backward)
    return out


class CastWeights:
    """A module's floating-point parameters and buffers cast to ``dtype``, cast again only when one of them
    changed: an optimizer step or ``load_state_dict`` writes in place and bumps the tensor's version counter, a
    ``.to(device)`` gives it new storage. The module itself keeps its own (fp32) tensors."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self._key = None
        self._cast: Dict[str, Tensor] = {}

    def __call__(self, module: nn.Module) -> Dict[str, Tensor]:
        """{name: tensor} of every parameter and buffer of ``module``, floating ones in ``self.dtype``."""
        tensors = dict(module.named_parameters())
        tensors.update(module.named_buffers())
        key = tuple((name, t.data_ptr(), t._version, t.dtype) for name, t in tensors.items())
        if key != self._key:
            self._cast = {
                name: t.detach().to(self.dtype) if t.is_floating_point() else t
                for name, t in tensors.items()
            }
            self._key = key
        return self._cast


def call_in_dtype(module: nn.Module, weights: CastWeights, *args):
    """``module(*args)`` with its weights and the floating-point tensors of ``args`` in ``weights.dtype``
    (``torch.func.functional_call``): the module's own parameters are neither cast nor replaced."""
    args = tuple(a.to(weights.dtype) if isinstance(a, Tensor) and a.is_floating_point() else a for a in args)
    return torch.func.functional_call(module, weights(module), args)
