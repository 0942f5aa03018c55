"""The sparse middle encoder alone: mmdet3d's ``SparseEncoder`` against ``SparseEncoderSharedIndices``, side by side.

Builds the config's middle encoder twice with the same random weights (``type`` SparseEncoder and
SparseEncoderSharedIndices), voxelizes ``--batch`` random clouds of ``--points`` points with the config's data
preprocessor and voxel encoder (as ``benchmark_model.py`` does), and times per call, in ``--rounds`` rounds
(reversed order every other round):

* ``infer``: eval mode, ``torch.no_grad``, batch 1 (the inference benchmark's call);
* ``train``: train mode, forward + backward of a random output gradient, ``--batch`` samples.

Both clocks: the wall clock of one synchronized call and CUDA events around it (the encoder's host work, spconv's
index building with its host waits, shows in the wall clock). spconv's TF32 flag as in the model (the config's
``model.sparse_conv_tf32``, default: cuDNN's TF32 flag). Checks that the two encoders' outputs agree, prints a
table and writes ``<out>/sparse_encoder_benchmark.{json,md}``.

    python tools/benchmarks/benchmark_sparse_encoder.py                    # GPU, the seed config
    python tools/benchmarks/benchmark_sparse_encoder.py --iters 3 --warmup 1 --rounds 1 --out /tmp/enc
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

ENCODERS = ('SparseEncoder', 'SparseEncoderSharedIndices')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    p.add_argument('--points', type=int, default=300000, help='points per sample (random, 5 features)')
    p.add_argument('--batch', type=int, default=2, help='samples per training call (inference: 1)')
    p.add_argument('--phases', nargs='+', default=['infer', 'train'], choices=['infer', 'train'])
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--out', default='docs/benchmarks')
    return p.parse_args(argv)


def build_parts(config):
    """(data preprocessor, voxel encoder, {encoder type: middle encoder}) on CUDA, the encoders with equal weights."""
    from mmdet3d.registry import MODELS
    from projects.mmdet3d_plugin.utils import load_config
    cfg = load_config(config).model
    torch.manual_seed(0)
    encoders = {name: MODELS.build(dict(cfg.pts_middle_encoder, type=name)).cuda() for name in ENCODERS}
    encoders[ENCODERS[1]].load_state_dict(encoders[ENCODERS[0]].state_dict())
    return MODELS.build(cfg.data_preprocessor).cuda(), MODELS.build(cfg.pts_voxel_encoder).cuda(), encoders


def encoder_inputs(preprocessor, voxel_encoder, pc_range, points, batch, training):
    """(features (N, C) fp32, coordinates (N, 4) int32) of ``batch`` random clouds (seed 0), voxelized with the
    training or the test ``max_voxels``."""
    from projects.mmdet3d_plugin.models.synthetic_inputs import random_points
    g = torch.Generator().manual_seed(0)
    clouds = [random_points(points, pc_range, g).cuda() for _ in range(batch)]
    preprocessor.train(training)
    with torch.no_grad():
        voxels = preprocessor({'inputs': {'points': clouds}, 'data_samples': []})['inputs']['voxels']
        feats = voxel_encoder(voxels['voxels'], voxels['num_points'], voxels['coors'])
    return feats.contiguous(), voxels['coors']


def time_calls(call, iters, warmup):
    """Median wall ms (one synchronized call) and median CUDA-event ms of ``iters`` calls after ``warmup``."""
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    wall, events = [], []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        call()
        end.record()
        torch.cuda.synchronize()
        wall.append((time.perf_counter() - t0) * 1000)
        events.append(start.elapsed_time(end))
    return statistics.median(wall), statistics.median(events)


def phase_call(encoder, feats, coors, batch, phase, grad_out):
    if phase == 'infer':
        encoder.eval()

        def call():
            with torch.no_grad():
                return encoder(feats, coors, batch)
    else:
        encoder.train()

        def call():
            encoder(feats, coors, batch).backward(grad_out)

    return call


def main(argv=None):
    args = parse_args(argv)
    from mmdet3d.utils import register_all_modules
    register_all_modules()
    import projects.mmdet3d_plugin  # noqa: F401
    from projects.mmdet3d_plugin.models.utils.sparse_conv_precision import resolve_sparse_conv_tf32, sparse_conv_tf32
    from projects.mmdet3d_plugin.utils import load_config
    cfg = load_config(args.config)
    tf32 = resolve_sparse_conv_tf32(cfg.model.get('sparse_conv_tf32'))
    preprocessor, voxel_encoder, encoders = build_parts(args.config)
    inputs = {
        'infer': encoder_inputs(preprocessor, voxel_encoder, cfg.point_cloud_range, args.points, 1, False),
        'train': encoder_inputs(preprocessor, voxel_encoder, cfg.point_cloud_range, args.points, args.batch, True)
    }
    batches = {'infer': 1, 'train': args.batch}
    results, outputs = [], {}
    runs = [(p, e) for p in args.phases for e in ENCODERS]
    with sparse_conv_tf32(tf32):
        for rnd in range(args.rounds):
            for phase, name in (runs if rnd % 2 == 0 else runs[::-1]):
                feats, coors = inputs[phase]
                enc = encoders[name]
                with torch.no_grad():
                    out = enc.eval()(feats, coors, batches[phase])
                outputs.setdefault(phase, {})[name] = out
                grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).cuda()
                wall, event = time_calls(
                    phase_call(enc, feats, coors, batches[phase], phase, grad_out), args.iters, args.warmup)
                results.append(
                    dict(phase=phase, encoder=name, round=rnd, wall_ms=wall, event_ms=event, voxels=len(coors)))
                print(
                    f'[round {rnd + 1}] {phase:5s} {name:28s} wall {wall:7.2f} ms  events {event:7.2f} ms', flush=True)
    agreement = {}
    for phase, outs in outputs.items():
        a, b = (outs[n].float() for n in ENCODERS)
        agreement[phase] = ((b - a).norm() / a.norm()).item()
    write(args, results, agreement, tf32)


def write(args, results, agreement, tf32):
    """Table per phase: median over rounds of each encoder's wall / event ms, and the ratio plain / shared."""
    dev = torch.cuda.get_device_name()
    agree = ', '.join(f'{p} {e:.1e}' for p, e in agreement.items())
    lines = [
        f'# Sparse middle encoder: SparseEncoder vs SparseEncoderSharedIndices ({dev})', '',
        f'`{args.config}`, torch {torch.__version__}, TF32 {tf32}; {args.points} random points per sample; '
        f'median of {args.iters} calls after {args.warmup}, median over {args.rounds} rounds (order reversed every '
        'other round); infer: eval + no_grad, batch 1; train: forward + backward, batch '
        f'{args.batch}. Output relative difference shared vs plain (eval): {agree}', '',
        '| phase | voxels | SparseEncoder wall / events ms | SharedIndices wall / events ms | speed-up wall / events |',
        '| --- | ---: | ---: | ---: | ---: |'
    ]
    summary = {}
    for phase in args.phases:
        med = {
            n: {
                k: statistics.median(r[k] for r in results if r['phase'] == phase and r['encoder'] == n)
                for k in ('wall_ms', 'event_ms')
            }
            for n in ENCODERS
        }
        plain, shared = med[ENCODERS[0]], med[ENCODERS[1]]
        speedup = {k: plain[k] / shared[k] for k in plain}
        summary[phase] = dict(median=med, speedup=speedup)
        voxels = next(r['voxels'] for r in results if r['phase'] == phase)
        lines.append(f'| {phase} | {voxels} | {plain["wall_ms"]:.2f} / {plain["event_ms"]:.2f} | '
                     f'{shared["wall_ms"]:.2f} / {shared["event_ms"]:.2f} | '
                     f'{speedup["wall_ms"]:.2f}x / {speedup["event_ms"]:.2f}x |')
    text = '\n'.join(lines) + '\n'
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'sparse_encoder_benchmark.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.out, 'sparse_encoder_benchmark.json'), 'w') as f:
        json.dump(
            dict(device=dev, args=vars(args), tf32=tf32, agreement=agreement, summary=summary, runs=results),
            f,
            indent=1)


if __name__ == '__main__':
    main()
