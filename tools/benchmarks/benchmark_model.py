"""Training-step benchmark of the full CMT fusion model for each attention path (GPU).

Builds ``projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py`` at its real sizes (batch 2, six 320x800
images, ~300k points per sample, DN from ``--num-gt`` GT boxes per sample: Nq = 900 + num_gt * min(10, 900 //
num_gt)) and runs ``--steps`` timed AdamW steps (after ``--warmup``) per ``--modes`` entry, each on a freshly built
model with the same seed. A step is voxelization (data preprocessor) + forward + loss + backward + optimizer step.
Prints a table (median iteration time, peak allocated / reserved MiB, forward time per top-level module) and
writes ``<out>/model_benchmark[_amp][_mmcv_voxelization].json`` and ``.md``.

    python tools/benchmarks/benchmark_model.py                       # fp32 outside the attention core (config dtype inside)
    python tools/benchmarks/benchmark_model.py --amp                 # bf16 autocast with the model's fp32 islands
    python tools/benchmarks/benchmark_model.py --num-gt 90           # worst case Nq = 1800
    python tools/benchmarks/benchmark_model.py --device cpu --config projects/configs/demo/cmt_demo_fusion_pillar_r18.py \
        --points 2000 --img-hw 96 256 --steps 1 --warmup 0 --modes sdpa exact --out /tmp/bench   # smoke run
"""
import argparse
import gc
import json
import logging
import os
import os.path as osp
import statistics
import sys
import time
from contextlib import nullcontext

import torch

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MODULES = ('data_preprocessor', 'img_backbone', 'img_neck', 'pts_voxel_encoder', 'pts_middle_encoder',
           'pts_backbone', 'pts_neck', 'pts_bbox_head.transformer', 'pts_bbox_head.task_head')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    p.add_argument('--modes', nargs='+', default=['sdpa', 'exact', 'triton'])
    p.add_argument('--steps', type=int, default=6)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--cams', type=int, default=6)
    p.add_argument('--img-hw', type=int, nargs=2, default=[320, 800])
    p.add_argument('--points', type=int, default=300000, help='points per sample (random, 5 features)')
    p.add_argument('--num-gt', type=int, default=40, help='GT boxes per sample (drives the DN query count)')
    p.add_argument('--amp', action='store_true', help='bf16 autocast over the step (fp32 islands inside)')
    p.add_argument('--attn-dtype', default=None, choices=['float32', 'float16', 'bfloat16'],
                   help='override decoder cross_attn_dtype (default: the config value)')
    p.add_argument('--voxel-impl', default=None, choices=['scatter', 'mmcv'],
                   help='model.data_preprocessor.voxel_impl (default: the config value, scatter)')
    p.add_argument('--out', default='docs/benchmarks')
    p.add_argument('--device', default='cuda', help="'cpu' only for a smoke run of this script (demo config)")
    return p.parse_args()


class _CpuEvent:

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, other):
        return (other.t - self.t) * 1000


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


class ModuleTimer:
    """Forward time of top-level modules from events recorded in forward hooks (ms, summed over calls)."""

    def __init__(self, model, device):
        self.device = device
        self.new_event = (lambda: torch.cuda.Event(enable_timing=True)) if device.type == 'cuda' else _CpuEvent
        self.events, self.handles = {}, []
        for name in MODULES:
            mod = model
            for part in name.split('.'):
                mod = getattr(mod, part, None)
            if mod is None:
                continue
            self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self.handles.append(mod.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(mod, args):
            ev = self.new_event()
            ev.record()
            self.events.setdefault(name, []).append([ev, None])
        return hook

    def _post(self, name):
        def hook(mod, args, out):
            ev = self.new_event()
            ev.record()
            self.events[name][-1][1] = ev
        return hook

    def reset(self):
        self.events = {}

    def times(self):
        _sync(self.device)
        return {k: sum(a.elapsed_time(b) for a, b in v if b is not None) for k, v in self.events.items()}


def build_model(cfg_path, mode, attn_dtype, device, voxel_impl=None):
    from mmengine.config import Config
    from mmdet3d.registry import MODELS
    cfg = Config.fromfile(cfg_path)
    if cfg.model.get('img_backbone'):
        cfg.model.img_backbone.init_cfg = None  # no pretrained file needed for timing
    cfg.model.pts_bbox_head.bias_mode = mode
    if attn_dtype is not None:
        cfg.model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_dtype = attn_dtype
    if voxel_impl is not None:
        cfg.model.data_preprocessor.voxel_impl = voxel_impl
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device).train()


def run_mode(args, mode):
    from mmdet3d.utils import register_all_modules
    from projects.mmdet3d_plugin.models.synthetic_inputs import synthetic_batch
    register_all_modules(init_default_scope=True)
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    torch.manual_seed(0)
    model = build_model(args.config, mode, args.attn_dtype, device, args.voxel_impl)
    head = model.pts_bbox_head
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    batch = synthetic_batch(args.batch, head.pc_range.tolist(), num_gt=args.num_gt, num_points=args.points,
                            num_cams=args.cams, img_hw=tuple(args.img_hw), device=device, seed=0,
                            with_points=head.use_bev, with_img=head.use_img)
    timer = ModuleTimer(model, device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if args.amp else nullcontext()
    times, parts, losses = [], [], []
    for step in range(args.warmup + args.steps):
        if step == args.warmup and cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        timer.reset()
        _sync(device)
        t0 = time.perf_counter()
        with amp:
            data = model.data_preprocessor(batch, training=True)
            loss_dict = model(**data, mode='loss')
        loss = sum(v for v in loss_dict.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 35)
        opt.step()
        _sync(device)
        if step >= args.warmup:
            times.append((time.perf_counter() - t0) * 1000)
            parts.append(timer.times())
            losses.append(loss.detach().item())
    attn = head.transformer.decoder.layers[0].cross_attn
    res = dict(
        mode=mode,
        resolved_path=attn.resolved_mode if attn.use_bias else 'no bias',
        iter_ms_median=statistics.median(times),
        iter_ms_all=times,
        peak_allocated_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        peak_reserved_mib=torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
        forward_ms_median={k: statistics.median(p.get(k, 0.0) for p in parts) for k in parts[0]},
        loss_last=losses[-1],
        num_queries_train=head.num_query + args.num_gt * min(head.dn_cfg['scalar'],
                                                             head.num_query // max(args.num_gt, 1)),
        attn_dtype=str(head.transformer.decoder.layers[0].cross_attn_dtype),
        voxel_impl=getattr(model.data_preprocessor, 'voxel_impl', 'mmcv'))
    for h in timer.handles:
        h.remove()
    del model, opt, batch, data, loss_dict, loss
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return res


def _mib(x):
    return 'n/a' if x is None else f'{x:.0f}'


def to_markdown(args, results, device):
    r0 = results[0]
    lines = [
        f'# CMT training step per attention path, {device}',
        '',
        f'config `{args.config}`; batch {args.batch}, {args.cams} x {args.img_hw[0]}x{args.img_hw[1]} images, '
        f'{args.points} points/sample, {args.num_gt} GT/sample (train queries {r0["num_queries_train"]}); '
        f'{"bf16 autocast with fp32 islands" if args.amp else "fp32 outside the attention core"}; '
        f'attention core dtype {r0["attn_dtype"]}; voxelization {r0["voxel_impl"]}; median of {args.steps} steps after {args.warmup} warm-up; '
        'step = voxelization + forward + loss + backward + AdamW.',
        '',
        '| path (ran) | iter ms (median) | speed-up vs sdpa | peak allocated MiB | peak reserved MiB |'
        ' allocated vs sdpa |',
        '| --- | --- | --- | --- | --- | --- |',
    ]
    base = next((r for r in results if r['mode'] == 'sdpa'), r0)
    for r in results:
        saved = 'n/a' if r['peak_allocated_mib'] is None else \
            f'{100 * (r["peak_allocated_mib"] / base["peak_allocated_mib"] - 1):+.0f}%'
        lines.append(f'| {r["mode"]} ({r["resolved_path"]}) | {r["iter_ms_median"]:.1f} '
                     f'| {base["iter_ms_median"] / r["iter_ms_median"]:.2f}x | {_mib(r["peak_allocated_mib"])} '
                     f'| {_mib(r["peak_reserved_mib"])} | {saved} |')
    lines += ['', 'Forward time per module (ms, median; backward not split; the head\'s own work outside its '
              'transformer and task heads, e.g. encodings and losses, is in none of the columns):', '',
              '| path | ' + ' | '.join(MODULES) + ' |', '| --- ' * (len(MODULES) + 1) + '|']
    for r in results:
        lines.append(f'| {r["mode"]} | '
                     + ' | '.join(f'{r["forward_ms_median"].get(m, 0.0):.1f}' for m in MODULES) + ' |')
    return '\n'.join(lines) + '\n'


def main():
    args = parse_args()
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init log
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('benchmark_model.py needs a CUDA device (or --device cpu for a smoke run)')
    device = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU (smoke run)'
    results = []
    for mode in args.modes:
        t0 = time.time()
        try:
            results.append(run_mode(args, mode))
        except Exception as e:  # report and go on with the other paths
            print(f'[{mode}] failed: {type(e).__name__}: {e}', flush=True)
            gc.collect()
            if args.device == 'cuda':
                torch.cuda.empty_cache()
            continue
        r = results[-1]
        print(f'[{mode}] {r["iter_ms_median"]:.1f} ms/iter, peak alloc {_mib(r["peak_allocated_mib"])} MiB, '
              f'reserved {_mib(r["peak_reserved_mib"])} MiB, loss {r["loss_last"]:.3f} ({time.time() - t0:.0f} s)',
              flush=True)
    if not results:
        sys.exit('no mode ran')
    md = to_markdown(args, results, device)
    print(md)
    os.makedirs(args.out, exist_ok=True)
    stem = osp.join(args.out, 'model_benchmark' + ('_amp' if args.amp else '')
                    + ('_mmcv_voxelization' if results[0]['voxel_impl'] == 'mmcv' else ''))
    with open(stem + '.json', 'w') as f:
        json.dump(dict(device=device, torch=torch.__version__, args=vars(args), results=results), f, indent=2)
    with open(stem + '.md', 'w') as f:
        f.write(md)
    print(f'wrote {stem}.json and {stem}.md')


if __name__ == '__main__':
    main()
