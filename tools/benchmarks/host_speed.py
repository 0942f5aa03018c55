"""The lent host's speed in one number: microseconds of host time per small PyTorch operator on the device.

The model's training forward and its batch-1 inference are bound by the host (about 4700 CUDA launches per training
step; session 28's profile), and the lent machines' hosts differ by up to ~2x. This calibration times the host side of
one tiny in-place add on ``--device`` (issued, not waited for: on CUDA a launch, on CPU the op itself), so runs of
the speed benchmarks on different hosts can be compared: a target missed on a host with a high ``op_us`` is a slow
host, not slower code. ``speed_targets.sh`` measures it before and after its benchmarks, and ``speed_targets.py``
prints it above its table.

    python tools/benchmarks/host_speed.py --device cuda --out OUT/host_speed_start.json

Writes ``{"device", "cpu", "calls", "repeats", "op_us": [per repeat], "op_us_median", "op_us_min"}``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import time

import torch


def cpu_model() -> str:
    """The host CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` where that is missing)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def small_op_us(device, calls: int = 2000, repeats: int = 7, op=None) -> list:
    """Host microseconds per call of ``op(x)`` (default an in-place add of 1 to a 16-element float32 tensor ``x`` on
    ``device``), one figure per repeat of ``calls`` calls. Each repeat starts with the device idle and is timed on
    the host clock without waiting for the device (on CUDA the launches are queued; 2000 tiny kernels finish
    faster than the host issues them, so the queue never fills)."""
    device = torch.device(device)
    op = op or (lambda t: t.add_(1.0))
    x = torch.zeros(16, device=device)
    for _ in range(min(calls, 200)):  # warm-up: kernel load, allocator, dispatcher caches
        op(x)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(calls):
            op(x)
        times.append((time.perf_counter() - t0) / calls * 1e6)
    _sync(device)
    return times


def measure(device, calls: int = 2000, repeats: int = 7) -> dict:
    """The calibration record (see the module docstring)."""
    device = torch.device(device)
    times = small_op_us(device, calls, repeats)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    return dict(
        device=name,
        cpu=cpu_model(),
        calls=calls,
        repeats=repeats,
        op_us=times,
        op_us_median=statistics.median(times),
        op_us_min=min(times))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--calls', type=int, default=2000, help='operators per repeat')
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--out', default=None, help='JSON file to write (default: print only)')
    args = p.parse_args(argv)
    if args.calls < 1 or args.repeats < 1:
        p.error(f'--calls and --repeats must be >= 1; got {args.calls} and {args.repeats}')
    rec = measure(args.device, args.calls, args.repeats)
    print(f'host speed: {rec["op_us_median"]:.2f} us per small operator on {rec["device"]} '
          f'(min {rec["op_us_min"]:.2f}; {rec["repeats"]} x {rec["calls"]} calls; host {rec["cpu"]})')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(rec, f, indent=2)
    return rec


if __name__ == '__main__':
    main()
