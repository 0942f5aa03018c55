"""Launch compiled Triton kernels without Triton's per-call argument binding and autotuner lookup.

``kernel[grid](*args)`` through ``triton.JITFunction`` binds every argument to the signature, computes the
specialization key and looks the compiled kernel up on each call; ``triton.autotune`` adds its own key on top.
That Python work runs on every call, and before this cache the attention's launches kept the GPU waiting for the
host (the host columns of ``tools/benchmarks/benchmark_attention.py``; docs/benchmarks/README.md, "Lean triton
launch").

``CompiledLaunchCache`` launches through Triton once per distinct argument set, keeps the compiled kernel it
returns (and the autotuner's choice), and launches that kernel directly afterwards. The key holds everything
Triton specializes on, conservatively: the exact values of the integer arguments (Triton specializes on
``== 1`` and divisibility by 16), each tensor's dtype, device and data pointer modulo 16 (alignment), the constexpr
values, the launch options and the CUDA device. Equal keys therefore give the same compiled kernel. A caller that
already holds a key determining the dtypes, devices, scalars and constexprs (the forward's launch plan) passes it
instead, and the cache adds only the alignments and the device. Only for
compiled CUDA launches; forced configs and the interpreter go through Triton every time (see triton_kernels).

A cached launch calls the compiled kernel's launcher (``CompiledKernel.run``) with the arguments Triton's own
``kernel[grid](...)`` runner passes, minus the per-call work that only launch hooks read (the runner builds a
``launch_metadata`` record for them on every call): with a launch hook installed (e.g. Triton's profiler), or on a
Triton without ``knobs``, cached launches go through that runner instead; without one the direct launch passes None
for the hook arguments, so the launcher calls no empty hook chain. The direct launch passes the tensors'
device addresses as integers (already read for the key): Triton's launcher takes an integer as the pointer itself,
where for a tensor it calls ``data_ptr()`` and asks the driver to translate the address (``cuPointerGetAttribute``,
one driver call per pointer argument on every launch). The key holds each tensor's device, so the first launch of a
key, through Triton, has checked that such addresses are memory the kernel can reach (a CPU tensor is refused there
and never cached).
"""
import contextlib
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from triton.runtime import Autotuner

try:  # Triton >= 3.4: launch hooks live in knobs.runtime (hook chains)
    from triton import knobs as _knobs
except ImportError:  # older Triton: always through the runner
    _knobs = None

Grid = Union[Tuple[int, ...], Callable[[dict], Tuple[int, ...]]]


class CompiledLaunchCache:
    """Compiled kernels by launch key; ``launch`` runs one kernel.

    Args:
        max_entries (int): entries kept; when full the cache starts over (a training run with varying query
            counts adds about seven entries per new count).
    """

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._entries: Dict[tuple, tuple] = {}
        self.hits = 0  # launches that skipped Triton's binding (tests, benchmarks)
        self.misses = 0

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def launch(self,
               name: str,
               kernel,
               grid: Grid,
               tensors: Sequence[torch.Tensor],
               scalars: tuple,
               consts: dict,
               options: dict,
               stream: Optional[torch.cuda.Stream] = None,
               key: Optional[tuple] = None) -> None:
        """Run ``kernel`` (a ``triton.JITFunction`` or ``triton.autotune`` wrapper) on ``grid``.

        The kernel's signature must be ``(*tensors, *scalars, *constexprs)``: the pointer arguments first, then
        the runtime scalars, then constexpr parameters given by ``consts`` and, for an autotuned kernel, by the
        chosen config. ``grid`` is a tuple or a function of the config's meta-parameters. ``options``: launch
        options of a plain jit kernel (``num_warps``). ``stream``: launch there instead of on the current stream
        (a direct launch takes its handle without switching the current stream). ``key``: a hashable the caller
        builds that determines the tensors' dtypes and devices, the scalars, ``consts`` and ``options`` (a launch
        plan's key: ``triton_kernels._plan_key``); the cache then reads only the pointers' alignment beside it. None:
        the cache reads all of them itself.
        """
        ptrs = [t.data_ptr() for t in tensors]
        alignments = tuple(p % 16 for p in ptrs)
        if key is None:
            key = (tuple(t.dtype for t in tensors), tuple(t.get_device() for t in tensors), tuple(consts.values()),
                   tuple(options.values()), scalars)
        device = torch.cuda.current_device()
        key = (name, device, key, alignments)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            with on_stream(stream):
                entry = self._launch_through_triton(kernel, grid, tensors, scalars, consts, options)
            if entry is not None:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = entry
            return
        self.hits += 1
        compiled, tail, meta, direct = entry
        g = grid(meta) if callable(grid) else grid
        g = (*g, 1, 1)  # the compiled kernel's launcher reads 3 dims
        hooks = _quiet_launch_hooks() if direct is not None else None
        if hooks is None:
            with on_stream(stream):
                compiled[g[:3]](*tensors, *scalars, *tail)
            return
        run, function, packed_metadata = direct
        handle = torch._C._cuda_getCurrentRawStream(device) if stream is None else stream.cuda_stream
        run(g[0], g[1], g[2], handle, function, packed_metadata, None, *hooks, *ptrs, *scalars, *tail)

    @staticmethod
    def _launch_through_triton(kernel, grid, tensors, scalars, consts, options):
        """Launch through Triton (compiling/autotuning if needed); the (compiled kernel, constexpr tail, config
        meta) to cache, or None when the kernel's signature is not ``(*tensors, *scalars, *constexprs)``."""
        compiled = kernel[grid](*tensors, *scalars, **consts, **options)
        tuned = isinstance(kernel, Autotuner)
        meta = dict(kernel.best_config.kwargs) if tuned else {}
        jit_fn = kernel.fn if tuned else kernel
        names = jit_fn.arg_names[len(tensors) + len(scalars):]
        given = {**consts, **meta}
        if compiled is None or sorted(names) != sorted(given):
            return None
        try:  # what Triton's runner passes to the launcher (None: launch through the runner)
            direct = (compiled.run, compiled.function, compiled.packed_metadata)
        except AttributeError:
            direct = None
        return compiled, tuple(given[n] for n in names), meta, direct


def on_stream(stream: Optional[torch.cuda.Stream]):
    """``torch.cuda.stream(stream)``, or no change when ``stream`` is None."""
    return contextlib.nullcontext() if stream is None else torch.cuda.stream(stream)


def _quiet_launch_hooks():
    """(None, None) for the launcher's (enter, exit) hook arguments when no launch hook is installed (empty hook
    chains or None): the launcher then skips the hook calls, where an empty chain would still be called on every
    launch. None when a hook is installed: it reads the launch_metadata record that only Triton's runner builds."""
    if _knobs is None:
        return None
    for hook in (_knobs.runtime.launch_enter_hook, _knobs.runtime.launch_exit_hook):
        if hook is not None and getattr(hook, 'calls', True):
            return None
    return None, None
