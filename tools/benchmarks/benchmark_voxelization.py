"""Hard voxelization: mmcv's op against ScatterHardVoxelization (``voxel_impl='scatter'``), side by side.

For each config's ``model.data_preprocessor.voxel_layer`` and each cloud size, times both implementations on the
same random cloud (x, y uniform in +-60 m, z in [-4, 4] m, 5 features; training ``max_voxels``), checks that the
outputs are equal element for element, prints a table and writes ``<out>/voxelization_benchmark.{json,md}``.

    python tools/benchmarks/benchmark_voxelization.py                      # GPU
    python tools/benchmarks/benchmark_voxelization.py --device cpu --points 20000 --repeats 2 --out /tmp/vox  # smoke
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

import torch

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CONFIGS = ('projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py',
           'projects/configs/fusion/cmt_voxel0075_vov_1600x640_cbgs.py',
           'projects/configs/demo/cmt_demo_fusion_fit_train.py')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--configs', nargs='+', default=list(CONFIGS))
    p.add_argument(
        '--points',
        type=int,
        nargs='+',
        default=[34000, 300000],
        help='points per cloud (one nuScenes keyframe ~34k; with 9 sweeps ~300k)')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--device', default='cuda')
    p.add_argument('--out', default='docs/benchmarks')
    return p.parse_args()


def _timed(fn, device, repeats):
    """Median ms of `repeats` calls after one warm-up; returns (ms, last output)."""
    out = fn()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


def main():
    args = parse_args()
    from mmcv.ops import Voxelization
    from mmengine.config import Config

    from projects.mmdet3d_plugin.models.data_preprocessors.scatter_voxelization import scatter_hard_voxelize
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('benchmark_voxelization.py needs a CUDA device (or --device cpu for a smoke run)')
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    rows = []
    for cfg_path in args.configs:
        layer = Config.fromfile(cfg_path).model.data_preprocessor.voxel_layer
        size, pcr, max_points = list(layer.voxel_size), list(layer.point_cloud_range), layer.max_num_points
        max_voxels = layer.max_voxels[0] if isinstance(layer.max_voxels, (tuple, list)) else layer.max_voxels
        mmcv_op = Voxelization(size, pcr, max_points, max_voxels)
        for n in args.points:
            pts = torch.rand(n, 5, generator=g)
            pts[:, :2] = pts[:, :2] * 120 - 60
            pts[:, 2] = pts[:, 2] * 8 - 4
            pts = pts.to(device)
            ms_mmcv, ref = _timed(lambda: mmcv_op(pts), device, args.repeats)
            ms_scatter, ours = _timed(lambda: scatter_hard_voxelize(pts, size, pcr, max_points, max_voxels), device,
                                      args.repeats)
            equal = all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(ours, ref))
            rows.append(
                dict(
                    config=osp.basename(cfg_path),
                    voxel_size=size,
                    max_num_points=max_points,
                    max_voxels=max_voxels,
                    points=n,
                    voxels=len(ref[0]),
                    mmcv_ms=ms_mmcv,
                    scatter_ms=ms_scatter,
                    speedup=ms_mmcv / ms_scatter,
                    equal=equal))
            r = rows[-1]
            print(
                f'{r["config"]} {n} points: mmcv {ms_mmcv:.2f} ms, scatter {ms_scatter:.2f} ms '
                f'({r["speedup"]:.1f}x), {r["voxels"]} voxels, equal={equal}',
                flush=True)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    lines = [
        f'# Hard voxelization, mmcv op vs scatter (`voxel_impl`), {name}', '',
        f'Median of {args.repeats} calls after one warm-up; random clouds (x, y in +-60 m, z in [-4, 4] m, '
        '5 features); training max_voxels; outputs compared element for element.', '',
        '| config | voxel size | max points | max voxels | points | voxels | mmcv ms | scatter ms | speed-up '
        '| equal |', '| --- ' * 10 + '|'
    ]
    for r in rows:
        lines.append(f'| {r["config"]} | {r["voxel_size"]} | {r["max_num_points"]} | {r["max_voxels"]} | '
                     f'{r["points"]} | {r["voxels"]} | {r["mmcv_ms"]:.2f} | {r["scatter_ms"]:.2f} | '
                     f'{r["speedup"]:.1f}x | {r["equal"]} |')
    md = '\n'.join(lines) + '\n'
    print(md)
    os.makedirs(args.out, exist_ok=True)
    stem = osp.join(args.out, 'voxelization_benchmark')
    with open(stem + '.json', 'w') as f:
        json.dump(dict(device=name, torch=torch.__version__, args=vars(args), results=rows), f, indent=2)
    with open(stem + '.md', 'w') as f:
        f.write(md)
    print(f'wrote {stem}.json and {stem}.md')
    if not all(r['equal'] for r in rows):
        sys.exit('scatter voxelization differs from mmcv on some cloud')


if __name__ == '__main__':
    main()
