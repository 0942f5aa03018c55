"""Inference-time CUDA graphs of a tensor function, one graph per input signature.

At batch 1 the head's decoder is bound by the host: hundreds of small kernels whose launches (Python, autograd
bookkeeping, Triton's launcher) take longer than the kernels run. A CUDA graph records the launches once and
replays them with one call. ``CudaGraphCache`` wraps a function ``fn(*tensors, **static) -> dict of tensors``:

* the first call with a new signature (shape, stride, dtype and device of every input tensor, plus the values of
  the hashable ``static`` keywords, e.g. the padded image size) runs ``fn`` a few times on a side stream (Triton
  autotuning and cuBLAS/cuDNN heuristics happen there, outside the capture), then captures one call;
* every call copies its inputs into the captured input buffers, replays the graph and returns copies of the
  outputs (the next replay overwrites the captured outputs).

``fn`` must not synchronise with the host (no ``.item()``, ``.tolist()`` of CUDA tensors, ``torch.inverse`` with
its error check) and must read everything that changes between calls from its tensor arguments: anything else
(parameters, buffers) is read at the addresses it had at capture, so parameters may change in place (optimizer
steps, ``load_state_dict``) but must not be replaced; ``clear()`` drops the graphs.
"""
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Dict, Hashable, Iterator, Optional, Sequence

import torch
from torch import Tensor


def _signature(tensors: Sequence[Optional[Tensor]]) -> tuple:
    return tuple(None if t is None else (tuple(t.shape), t.stride(), t.dtype, t.device) for t in tensors)


class CudaGraphCache:
    """Replays ``fn`` from CUDA graphs captured per input signature (LRU, at most ``max_graphs``).

    Args:
        fn: ``fn(*tensors, **static) -> Dict[str, Tensor]``; tensors on one CUDA device, or None; ``static``
            hashable values that select the graph and are passed to ``fn`` as they are.
        warmup (int): eager calls on a side stream before a capture (>= 1: Triton autotunes on the first).
        max_graphs (int): graphs kept; each holds its inputs, outputs and intermediates in a shared memory pool.
    """

    def __init__(self, fn: Callable[..., Dict[str, Tensor]], warmup: int = 2, max_graphs: int = 4):
        if warmup < 1:
            raise ValueError(f'CudaGraphCache: warmup must be >= 1 (Triton autotunes on the first call); got {warmup}')
        self.fn, self.warmup, self.max_graphs = fn, warmup, max_graphs
        self._graphs = OrderedDict()  # signature -> (graph, static inputs, static outputs)
        self._pool = None
        self.captures = 0  # graphs captured so far (tests, logs)

    def clear(self) -> None:
        self._graphs.clear()
        self._pool = None

    def __len__(self) -> int:
        return len(self._graphs)

    def __call__(self, *tensors: Optional[Tensor], **static: Hashable) -> Dict[str, Tensor]:
        key = (_signature(tensors), tuple(sorted(static.items())))
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(tensors, static)
            self._graphs[key] = entry
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        graph, static_in, static_out = entry
        for buf, t in zip(static_in, tensors):
            if t is not None:
                buf.copy_(t)
        graph.replay()
        return {name: t.clone() for name, t in static_out.items()}

    def _capture(self, tensors, static):
        device = next(t.device for t in tensors if t is not None)
        static_in = [None if t is None else t.clone() for t in tensors]
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*static_in, **static)
        torch.cuda.current_stream(device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = self.fn(*static_in, **static)
        if not isinstance(static_out, dict) or not all(isinstance(t, Tensor) for t in static_out.values()):
            raise TypeError('CudaGraphCache: fn must return a dict of tensors; got '
                            f'{type(static_out).__name__}')
        self.captures += 1
        return graph, static_in, static_out


def graphs_apply(module: torch.nn.Module, tensor: Optional[Tensor]) -> bool:
    """True where an inference graph may replace eager code: eval mode, autograd off, ``tensor`` on CUDA."""
    return (tensor is not None and tensor.is_cuda and not module.training and not torch.is_grad_enabled())


def autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """The caller's autocast dtype on ``device`` (None: autocast off): a graph's ``static`` key, because the captured
    kernels differ per precision."""
    return torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None


@contextmanager
def graph_safe_autocast(device: torch.device, dtype: Optional[torch.dtype]) -> Iterator[None]:
    """Autocast as the caller had it (``dtype`` from ``autocast_dtype``; None: off), with the weight-cast cache off:
    a cached cast made before a capture would be read by the graph after autocast frees it (PyTorch's rule for
    graphs under autocast)."""
    with torch.autocast(device.type, dtype=dtype or torch.float16, enabled=dtype is not None, cache_enabled=False):
        yield
