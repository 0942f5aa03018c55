"""Where the training step's forward spends its host time, section by section (probe).

Builds the seed config's model as tools/benchmarks/benchmark_model.py does (--amp config: the config's
AmpOptimWrapper), wraps sections (modules' forward, methods, module-level functions) with a host clock
(perf_counter, inclusive) and CUDA events, runs warm-up + timed steps, then profiles one step with a
record_function per section and counts, inside each section's host interval on the main thread, the CUDA
launches and the host synchronisations (cudaStreamSynchronize / cudaDeviceSynchronize / synchronous copies).
Those per-section counts over-count for sections called more than once (they exceed their callers' counts); the
whole step's totals (row TOTAL) and the host times are what docs/benchmarks/README.md uses.

    python docs/benchmarks/losses_self_attn_s28/probes/probe_step_sections.py --modes auto sdpa --steps 6 \
        --warmup 3 --out OUT

CPU smoke run: --cpu --config projects/configs/demo/cmt_demo_fusion_pillar_r18.py --points 2000 --cams 2
--img-hw 96 256 --steps 1 --warmup 0. Call 1 ran an earlier draft (sections `head._matching_loss`, `head._dn_loss`
and `layer.self_attn` = mmcv's forward, the code of that commit); this copy wraps the methods of the new code.
"""
import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections import defaultdict

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *['..'] * 4))  # the repository root
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'tools', 'benchmarks'))

import benchmark_model as bm  # noqa: E402

CPU = False


class Sections:

    def __init__(self):
        self.host = defaultdict(float)
        self.calls = defaultdict(int)
        self.events = defaultdict(list)
        self.record = False
        self.restore = []

    def wrap(self, name, obj, attr):
        fn = getattr(obj, attr)
        sec = self

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            ev0 = bm._CpuEvent() if CPU else torch.cuda.Event(enable_timing=True)
            ev0.record()
            t0 = time.perf_counter()
            with torch.profiler.record_function('SEC::' + name):
                out = fn(*args, **kwargs)
            t1 = time.perf_counter()
            ev1 = bm._CpuEvent() if CPU else torch.cuda.Event(enable_timing=True)
            ev1.record()
            if sec.record:
                sec.host[name] += (t1 - t0) * 1000
                sec.calls[name] += 1
                sec.events[name].append((ev0, ev1))
            return out

        had = attr in vars(obj) if not isinstance(obj, type) else True
        self.restore.append((obj, attr, fn, had))
        setattr(obj, attr, timed)

    def reset(self):
        self.host.clear()
        self.calls.clear()
        self.events.clear()

    def gpu(self):
        sync()
        return {k: sum(a.elapsed_time(b) for a, b in v) for k, v in self.events.items()}


def sync():
    if not CPU:
        torch.cuda.synchronize()


def install(model, sec):
    import projects.mmdet3d_plugin.attention.geometric_bias_attention as gba
    import projects.mmdet3d_plugin.models.dense_heads.cmt_head as ch
    head = model.pts_bbox_head
    for name in ('data_preprocessor', 'img_backbone', 'img_neck', 'pts_voxel_encoder', 'pts_middle_encoder',
                 'pts_backbone', 'pts_neck', 'grid_mask'):
        mod = getattr(model, name, None)
        if mod is not None:
            sec.wrap(name, mod, 'forward')
    for name in ('extract_img_feat', 'extract_pts_feat'):
        sec.wrap(name, model, name)
    for name in ('loss', '_forward_tensors', '_bev_tokens', '_img_tokens', '_query_pos', '_decode', 'loss_by_feat',
                 '_hungarian_matches', '_dn_targets', '_matching_losses', '_dn_losses'):
        sec.wrap('head.' + name, head, name)
    sec.wrap('head.transformer', head.transformer, 'forward')
    sec.wrap('head.task_head', head.task_head, 'forward')
    sec.wrap('head.loss_cls', head.loss_cls, 'forward')
    sec.wrap('head.loss_bbox', head.loss_bbox, 'forward')
    sec.wrap('assigner.cost_matrices', head.assigner, 'cost_matrices')
    for fname in ('build_dn_queries', 'linear_sum_assignments', 'lidar2img_from_metas', 'camera_key_lines',
                  'bev_key_lines', 'gravity_center_boxes', 'encode_boxes'):
        sec.wrap('fn.' + fname, ch, fname)
    sec.wrap('fn.run_path', gba, 'run_path')
    for layer in head.transformer.decoder.layers:
        sec.wrap('layer', layer, 'forward')
        sec.wrap('layer.self_attn', layer, '_self_attention')
        sec.wrap('layer.cross_attn', layer.cross_attn, 'forward')
        sec.wrap('layer.ffn', layer.ffn, 'forward')
        for n in layer.norms:
            sec.wrap('layer.norms', n, 'forward')
    sec.wrap('decoder.post_norm', head.transformer.decoder.post_norm, 'forward')


LAUNCH = ('cudaLaunchKernel', 'cuLaunchKernel', 'cuLaunchKernelEx', 'cudaLaunchKernelExC')
SYNC = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize')


def profile_counts(step):
    from torch.profiler import ProfilerActivity, profile
    sync()
    acts = [ProfilerActivity.CPU] + ([] if CPU else [ProfilerActivity.CUDA])
    with profile(activities=acts) as prof:
        step()
        sync()
    evs = [e for e in prof.events()]
    secs = [e for e in evs if e.name.startswith('SEC::')]
    rt = [e for e in evs if e.name in LAUNCH + SYNC or e.name.startswith('cudaMemcpy')]
    aten = [e for e in evs if e.name.startswith('aten::')]
    out = defaultdict(lambda: defaultdict(float))
    for s in secs:
        a, b = s.time_range.start, s.time_range.end
        o = out[s.name[5:]]
        for e in rt:
            if e.thread == s.thread and a <= e.time_range.start and e.time_range.end <= b:
                kind = 'launch' if e.name in LAUNCH else ('sync' if e.name in SYNC else 'memcpy')
                o[kind] += 1
                o[kind + '_us'] += e.time_range.end - e.time_range.start
        o['aten_ops'] += sum(1 for e in aten
                             if e.thread == s.thread and a <= e.time_range.start and e.time_range.end <= b
                             and e.cpu_parent is not None and not e.cpu_parent.name.startswith('aten::'))
    tot = defaultdict(float)
    for e in rt:
        kind = 'launch' if e.name in LAUNCH else ('sync' if e.name in SYNC else 'memcpy')
        tot[kind] += 1
        tot[kind + '_us'] += e.time_range.end - e.time_range.start
    out['TOTAL'] = tot
    return {k: dict(v) for k, v in out.items()}


def run(args, mode):
    from mmengine.optim import build_optim_wrapper

    from mmdet3d.utils import register_all_modules
    from projects.mmdet3d_plugin.utils import load_config
    register_all_modules(init_default_scope=True)
    device = torch.device('cpu' if CPU else 'cuda')
    torch.manual_seed(0)
    model = bm.build_model(args.config, mode, None, device, None, args.cfg_options)
    optim_wrapper = build_optim_wrapper(model, load_config(args.config, args.cfg_options).optim_wrapper)
    ns = argparse.Namespace(batch=2, num_gt=40, points=args.points, cams=args.cams, img_hw=tuple(args.img_hw))
    batch = bm.benchmark_batch(ns, model.pts_bbox_head, device)
    sec = Sections()
    install(model, sec)
    marks = {}

    def step():
        t0 = time.perf_counter()
        with optim_wrapper.optim_context(model):
            data = model.data_preprocessor(batch, training=True)
            loss_dict = model(**data, mode='loss')
        loss = sum(v for v in loss_dict.values())
        t1 = time.perf_counter()
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        t2 = time.perf_counter()
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        t3 = time.perf_counter()
        marks.update(forward=(t1 - t0) * 1000, backward=(t2 - t1) * 1000, optimizer=(t3 - t2) * 1000)

    rows = defaultdict(list)
    gpu_rows = defaultdict(list)
    phases = defaultdict(list)
    steps = []
    for i in range(args.warmup + args.steps):
        sync()
        sec.reset()
        sec.record = i >= args.warmup
        t0 = time.perf_counter()
        step()
        sync()
        if sec.record:
            steps.append((time.perf_counter() - t0) * 1000)
            for k, v in sec.host.items():
                rows[k].append(v)
            for k, v in sec.gpu().items():
                gpu_rows[k].append(v)
            for k, v in marks.items():
                phases[k].append(v)
    calls = dict(sec.calls)
    sec.record = False
    counts = profile_counts(step)
    res = dict(
        mode=mode,
        step_ms=statistics.median(steps),
        steps=steps,
        phases={
            k: statistics.median(v)
            for k, v in phases.items()
        },
        host_ms={
            k: statistics.median(v)
            for k, v in rows.items()
        },
        gpu_ms={
            k: statistics.median(v)
            for k, v in gpu_rows.items()
        },
        calls=calls,
        counts=counts)
    model = optim_wrapper = batch = None  # free the GPU memory (the step closure holds the names)
    bm.release_memory(device)
    return res


def table(res):
    lines = [
        f"## {res['mode']}: step {res['step_ms']:.1f} ms, phases host " + ', '.join(f'{k} {v:.1f}'
                                                                                    for k, v in res['phases'].items()),
        '', '| section | calls | host ms | GPU span ms | aten ops | launches | syncs | sync us | memcpy |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
    ]
    c = res['counts']
    for k in sorted(res['host_ms'], key=lambda k: -res['host_ms'][k]):
        cc = c.get(k, {})
        lines.append(f"| {k} | {res['calls'].get(k, 0)} | {res['host_ms'][k]:.2f} | {res['gpu_ms'].get(k, 0):.2f} | "
                     f"{cc.get('aten_ops', 0):.0f} | {cc.get('launch', 0):.0f} | {cc.get('sync', 0):.0f} | "
                     f"{cc.get('sync_us', 0):.0f} | {cc.get('memcpy', 0):.0f} |")
    t = c.get('TOTAL', {})
    lines.append(f"| TOTAL (profiled step) | | | | | {t.get('launch', 0):.0f} | {t.get('sync', 0):.0f} | "
                 f"{t.get('sync_us', 0):.0f} | {t.get('memcpy', 0):.0f} |")
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--config', default='projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    p.add_argument('--modes', nargs='+', default=['auto', 'sdpa'])
    p.add_argument('--steps', type=int, default=6)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--cfg-options', nargs='*', default=None)
    p.add_argument('--out', default='probe_out')
    p.add_argument('--points', type=int, default=300000)
    p.add_argument('--cams', type=int, default=6)
    p.add_argument('--img-hw', type=int, nargs=2, default=[320, 800])
    p.add_argument('--cpu', action='store_true')
    args = p.parse_args()
    if args.cfg_options:
        from mmengine.config import DictAction  # noqa: F401
        args.cfg_options = dict(kv.split('=', 1) for kv in args.cfg_options)
        args.cfg_options = {k: eval(v) for k, v in args.cfg_options.items()}
    global CPU
    CPU = args.cpu
    os.makedirs(args.out, exist_ok=True)
    results = []
    for mode in args.modes:
        res = run(args, mode)
        results.append(res)
        print(table(res), flush=True)
    with open(os.path.join(args.out, 'step_sections.json'), 'w') as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, 'step_sections.md'), 'w') as f:
        f.write('\n\n'.join(table(r) for r in results) + '\n')


if __name__ == '__main__':
    main()
