"""Memory probes: read current and peak memory of one process on its device.

Two probes with the same interface, all figures in MiB (2**20 bytes):

* :class:`CudaMemoryProbe` -- PyTorch's caching-allocator statistics of one
  CUDA device (peak/current allocated, peak reserved) plus the device-wide
  used memory (NVML through ``torch.cuda.device_memory_used`` when pynvml is
  installed, else ``cudaMemGetInfo`` through ``torch.cuda.mem_get_info``).
* :class:`ProcessRSSProbe` -- resident set size of this process from
  ``/proc/self/status`` (``VmRSS``, peak ``VmHWM``); the peak is reset by
  writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0). Where that is not
  possible the peak is the process-lifetime peak; :attr:`peak_scope` says
  which.

``peaks()`` returns the peaks since the last ``reset_peaks()``; ``current()``
returns instantaneous values. Keys are the metric names the hook logs.
"""
import os
import platform
import resource
from typing import Dict, Optional

import torch

MIB = float(2**20)


class CudaMemoryProbe:
    """Caching-allocator and device memory of one CUDA device (MiB)."""

    kind = 'cuda'
    peak_keys = ('mem_peak_alloc_mib', 'mem_peak_reserved_mib')
    peak_scope = 'since last reset (torch.cuda.reset_peak_memory_stats)'

    def __init__(self, device: Optional[torch.device] = None):
        if not torch.cuda.is_available():
            raise RuntimeError('CudaMemoryProbe needs CUDA; '
                               'use ProcessRSSProbe on CPU')
        if device is None or device.index is None:
            device = torch.device('cuda', torch.cuda.current_device())
        self.device = device
        self.device_name = torch.cuda.get_device_name(device)
        self.description = 'cuda (torch.cuda memory stats)'
        self.device_used_source = self._pick_device_used_source()

    def _pick_device_used_source(self) -> str:
        try:
            torch.cuda.device_memory_used(self.device)
            return 'nvml'
        except Exception:  # pynvml missing or NVML unusable
            return 'cudaMemGetInfo'

    def device_used_mib(self) -> float:
        """Memory used on the whole device by all processes (MiB)."""
        if self.device_used_source == 'nvml':
            return torch.cuda.device_memory_used(self.device) / MIB
        free, total = torch.cuda.mem_get_info(self.device)
        return (total - free) / MIB

    def peaks(self) -> Dict[str, float]:
        return {
            'mem_peak_alloc_mib': torch.cuda.max_memory_allocated(self.device) / MIB,
            'mem_peak_reserved_mib': torch.cuda.max_memory_reserved(self.device) / MIB,
        }

    def current(self) -> Dict[str, float]:
        return {
            'mem_alloc_mib': torch.cuda.memory_allocated(self.device) / MIB,
            'mem_device_used_mib': self.device_used_mib(),
        }

    def reset_peaks(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)


class ProcessRSSProbe:
    """Resident set size of this process (MiB), for CPU runs."""

    kind = 'cpu'
    peak_keys = ('max_rss_mib', )
    _status = '/proc/self/status'
    _clear_refs = '/proc/self/clear_refs'

    def __init__(self):
        self.device = torch.device('cpu')
        self.device_name = platform.processor() or platform.machine()
        self.description = 'cpu (process RSS)'
        self.has_proc = os.path.exists(self._status)
        self.can_reset = self.has_proc and self._try_reset()
        self.peak_scope = ('since last reset (/proc/self/clear_refs)' if self.can_reset else 'process lifetime')

    def _try_reset(self) -> bool:
        try:
            with open(self._clear_refs, 'w') as f:
                f.write('5')
            return True
        except OSError:
            return False

    def _read_status(self) -> Dict[str, float]:
        """``VmRSS`` and ``VmHWM`` of /proc/self/status in MiB."""
        values = {}
        with open(self._status) as f:
            for line in f:
                if line.startswith(('VmRSS:', 'VmHWM:')):
                    key, rest = line.split(':', 1)
                    kib = int(rest.split()[0])  # the file states 'kB'
                    values[key] = kib / 1024.0
        return values

    def peaks(self) -> Dict[str, float]:
        if self.has_proc:
            return {'max_rss_mib': self._read_status()['VmHWM']}
        # ru_maxrss is KiB on Linux, bytes on macOS.
        scale = MIB if platform.system() == 'Darwin' else 1024.0
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {'max_rss_mib': maxrss / scale}

    def current(self) -> Dict[str, float]:
        if self.has_proc:
            return {'rss_mib': self._read_status()['VmRSS']}
        import psutil  # only needed off Linux
        return {'rss_mib': psutil.Process().memory_info().rss / MIB}

    def reset_peaks(self) -> None:
        if self.can_reset:
            self._try_reset()


def make_memory_probe(device: Optional[torch.device] = None):
    """The probe for ``device`` (a CUDA device, else the process RSS)."""
    if device is not None and device.type == 'cuda':
        return CudaMemoryProbe(device)
    if device is None and torch.cuda.is_available():
        return CudaMemoryProbe()
    return ProcessRSSProbe()
