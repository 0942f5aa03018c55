r"""Training-step (default) and inference (`--inference`) benchmark of the full CMT fusion model (GPU).

Builds ``projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py`` at its real sizes (batch 2, six 320x800
images, ~300k points per sample, DN from ``--num-gt`` GT boxes per sample: Nq = 900 + num_gt * min(10, 900 //
num_gt)) and runs ``--steps`` timed AdamW steps (after ``--warmup``) per ``--modes`` entry, each on a freshly built
model with the same seed. A step is voxelization (data preprocessor) + forward + loss + backward + optimizer step.
Prints a table (median iteration time, peak allocated / reserved MiB, forward time per top-level module, host and
GPU time of the step's phases: ``StepMarks``) and writes ``<out>/model_benchmark[_amp][_mmcv_voxelization].json``
and ``.md``.

    python tools/benchmarks/benchmark_model.py               # fp32 outside the attention core (config dtype inside)
    python tools/benchmarks/benchmark_model.py --amp         # bf16 autocast with the model's fp32 islands
    python tools/benchmarks/benchmark_model.py --num-gt 90   # worst case Nq = 1800
    python tools/benchmarks/benchmark_model.py --amp config --modes sdpa auto --rounds 3   # sdpa auto, auto sdpa, ...
    python tools/benchmarks/benchmark_model.py --device cpu \
        --config projects/configs/demo/cmt_demo_fusion_pillar_r18.py \
        --points 2000 --img-hw 96 256 --steps 1 --warmup 0 --modes sdpa exact --out /tmp/bench   # smoke run

``--inference``: batch-1 (``--batch``) predict timing instead, in eval mode under ``torch.no_grad``, per
``--precision`` entry (fp32; fp16 / bf16: ``torch.autocast`` over data preprocessor + predict, the model's fp32
islands as in ``tools/test.py --amp``) and per ``--modes`` entry (default ``config``: the config's own ``bias_mode``),
each on a freshly built model with the same seed. A call is data preprocessor (voxelization + image normalisation) +
``model(..., mode='predict')`` (features, head, box decoding). Reports the wall clock per call (median, synchronized),
FPS, the time of each part (CUDA events in forward hooks / method wrappers: data_preprocessor, pts_voxel_encoder,
pts_middle_encoder, pts_backbone, pts_neck, img_backbone, img_neck, pts_bbox_head (predict: forward + decoding), its
transformer and task_head, bbox_decode), peak allocated / reserved memory, the sparse-conv backend and the attention
path each bias-attention module ran (``resolved_mode``). ``--cuda-graph off head all``: runs without CUDA graphs, with
the head's graph, with the head's and the detector's feature graphs (image branch on a side stream overlapping the
LiDAR branch, BEV backbone + neck); graphed modules have no part time. Writes ``<out>/model_inference.json`` and
``.md``.

    python tools/benchmark_model.py --inference --precision fp32 fp16          # full config, batch 1
    python tools/benchmark_model.py --inference --device cpu \
        --config projects/configs/demo/cmt_demo_fusion_pillar_r18.py --points 2000 --cams 2 --img-hw 96 256 \
        --steps 1 --warmup 0 --precision fp32 bf16 --out /tmp/bench   # smoke run

On CPU the part times are host ``perf_counter`` times and the GPU-only figures (peak memory) are ``null``.
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

MODULES = ('data_preprocessor', 'img_backbone', 'img_neck', 'pts_voxel_encoder', 'pts_middle_encoder', 'pts_backbone',
           'pts_neck', 'pts_bbox_head.transformer', 'pts_bbox_head.task_head')
# training: head methods timed as well (called directly, not through Module.__call__): the head's whole training call
# (DN queries, token encodings, transformer, task heads, losses) and its losses (Hungarian matching included)
TRAIN_METHODS = ('pts_bbox_head.loss', 'pts_bbox_head.loss_by_feat')
TRAIN_PARTS = MODULES + TRAIN_METHODS
# --inference: the parts timed, in call order ('pts_bbox_head' and 'bbox_decode' wrap methods, not forward)
INFER_PARTS = ('data_preprocessor', 'pts_voxel_encoder', 'pts_middle_encoder', 'pts_backbone', 'pts_neck',
               'img_backbone', 'img_neck', 'pts_bbox_head', 'pts_bbox_head.transformer', 'pts_bbox_head.task_head',
               'bbox_decode')
# --cuda-graph: the config switches of each choice, and the modules each choice replays from a graph (no timing
# hooks there: an event recorded during a capture would break it; the image graph also runs on a side stream)
HEAD_GRAPH = {'model.pts_bbox_head.cuda_graph': True}
GRAPH_SWITCHES = {'off': {}, 'head': HEAD_GRAPH, 'all': dict(HEAD_GRAPH, **{'model.cuda_graph': True})}
HEAD_GRAPHED = ('pts_bbox_head.transformer', 'pts_bbox_head.task_head')
GRAPHED_MODULES = {
    'off': (),
    'head': HEAD_GRAPHED,
    'all': HEAD_GRAPHED + ('img_backbone', 'img_neck', 'pts_backbone', 'pts_neck')
}
# training step phases (StepMarks): forward = voxelization + features + head + losses
STEP_PHASES = ('forward', 'backward', 'optimizer')
PRECISIONS = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def parse_args(argv=None):
    from projects.mmdet3d_plugin.utils import CfgOptionsAction
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    p.add_argument(
        '--inference', action='store_true', help='time batch-1 predict (eval, no_grad) instead of training steps')
    p.add_argument(
        '--modes',
        nargs='+',
        default=None,
        help="bias_mode per run (default: sdpa exact triton; --inference: 'config', the config's own)")
    p.add_argument(
        '--precision',
        nargs='+',
        default=['fp32', 'fp16'],
        choices=sorted(PRECISIONS),
        help='--inference: autocast dtype per run (fp32: no autocast)')
    p.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='run the list of runs (training: --modes; --inference: every mode/precision/graph/sparse setting) this '
        'many times, in reversed order every other round (host speed drifts); training rows are compared with the '
        'sdpa run of their own round')
    p.add_argument('--steps', type=int, default=None, help='timed steps / calls (default 6; --inference 20)')
    p.add_argument('--warmup', type=int, default=None, help='untimed first steps / calls (default 2; --inference 5)')
    p.add_argument('--batch', type=int, default=None, help='samples per step (default 2; --inference 1)')
    p.add_argument('--cams', type=int, default=6)
    p.add_argument('--img-hw', type=int, nargs=2, default=[320, 800])
    p.add_argument('--points', type=int, default=300000, help='points per sample (random, 5 features)')
    p.add_argument('--num-gt', type=int, default=40, help='GT boxes per sample (drives the DN query count)')
    p.add_argument(
        '--amp',
        nargs='?',
        const='bf16',
        default=None,
        choices=['bf16', 'config'],
        help="training: 'bf16' (bare --amp): bf16 autocast over the step (fp32 islands inside), AdamW; 'config': "
        "the config's own optim_wrapper (e.g. AmpOptimWrapper fp16 with dynamic loss scale, gradient clipping)")
    p.add_argument(
        '--cuda-graph',
        nargs='+',
        default=['off'],
        choices=list(GRAPH_SWITCHES),
        help="--inference: runs without CUDA graphs ('off'), with the head's graph ('head': "
        "model.pts_bbox_head.cuda_graph), with the head's and the detector's feature graphs ('all': also "
        "model.cuda_graph: image branch on a side stream, BEV backbone + neck)")
    p.add_argument(
        '--sparse-fp16',
        nargs='+',
        default=['off'],
        choices=['off', 'on'],
        help='--inference: runs with the sparse middle encoder in fp32 / in fp16 '
        '(model.sparse_conv_fp16_inference)')
    p.add_argument(
        '--attn-dtype',
        default=None,
        choices=['float32', 'float16', 'bfloat16'],
        help='override decoder cross_attn_dtype (default: the config value)')
    p.add_argument(
        '--voxel-impl',
        default=None,
        choices=['scatter', 'mmcv'],
        help='model.data_preprocessor.voxel_impl (default: the config value, scatter)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config keys, e.g. model.data_preprocessor.voxel_impl=mmcv')
    p.add_argument(
        '--profile',
        type=int,
        default=0,
        metavar='ROWS',
        help='after the timed steps/calls, profile one more (torch.profiler, CPU + CUDA) and write its top ROWS '
        'operators by CUDA time to <out>/<name>_profile_<run>.txt (also printed)')
    p.add_argument('--out', default='docs/benchmarks')
    p.add_argument('--device', default='cuda', help="'cpu' only for a smoke run of this script (demo config)")
    args = p.parse_args(argv)
    defaults = dict(modes=['config'], steps=20, warmup=5, batch=1) if args.inference else \
        dict(modes=['sdpa', 'exact', 'triton'], steps=6, warmup=2, batch=2)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.rounds < 1:
        p.error('--steps, --batch and --rounds must be >= 1, --warmup >= 0')
    return args


class _CpuEvent:

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, other):
        return (other.t - self.t) * 1000


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def release_memory(device) -> None:
    """Collect the finished run's objects and return the cached GPU memory before the next run."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


class ModuleTimer:
    """Forward time of top-level modules from events recorded in forward hooks (ms, summed over calls).

    ``methods`` ({name: (object, attribute)}) also times methods that are called directly rather than through
    ``Module.__call__`` (no hooks fire there), by wrapping them on the instance until :meth:`remove`.
    """

    def __init__(self, model, device, modules=MODULES, methods=None):
        self.device = device
        self.new_event = (lambda: torch.cuda.Event(enable_timing=True)) if device.type == 'cuda' else _CpuEvent
        self.events, self.handles, self.wrapped = {}, [], []
        for name in modules:
            mod = model
            for part in name.split('.'):
                mod = getattr(mod, part, None)
            if mod is None or (methods and name in methods):
                continue
            self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self.handles.append(mod.register_forward_hook(self._post(name)))
        for name, (obj, attr) in (methods or {}).items():
            if obj is not None and callable(getattr(obj, attr, None)):
                self._wrap(name, obj, attr)

    def _wrap(self, name, obj, attr):
        fn, pre, post = getattr(obj, attr), self._pre(name), self._post(name)

        def timed(*args, **kwargs):
            pre(None, None)
            out = fn(*args, **kwargs)
            post(None, None, out)
            return out

        setattr(obj, attr, timed)  # an instance attribute shadows the class's method
        self.wrapped.append((obj, attr))

    def remove(self):
        for h in self.handles:
            h.remove()
        for obj, attr in self.wrapped:
            delattr(obj, attr)
        self.handles, self.wrapped = [], []

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


class StepMarks:
    """Where a training step's time goes: at each phase boundary (``STEP_PHASES``) the host clock and a CUDA event
    are read without synchronizing. ``host`` ms is the time the Python thread spent issuing a phase (its waits on
    the GPU included); ``gpu`` ms the time between the events on the GPU's timeline, i.e. until the GPU finished
    that phase's work. A phase whose gpu ms is no larger than its host ms is bound by the host (the GPU waited for
    the launches); one with gpu > host by the GPU."""

    def __init__(self, device):
        self.cuda = device.type == 'cuda'
        self.marks = {}

    def mark(self, name):
        event = torch.cuda.Event(enable_timing=True) if self.cuda else None
        if event is not None:
            event.record()
        self.marks[name] = (time.perf_counter(), event)

    def phases(self):
        """{phase: {'host': ms, 'gpu': ms or None}} of the last step (synchronizes)."""
        if self.cuda:
            torch.cuda.synchronize()
        out, names = {}, ('start', ) + STEP_PHASES
        for a, b in zip(names, names[1:]):
            (ta, ea), (tb, eb) = self.marks[a], self.marks[b]
            out[b] = dict(host=(tb - ta) * 1000, gpu=ea.elapsed_time(eb) if self.cuda else None)
        return out


def run_order(runs: list, rounds: int) -> list:
    """[(round, run)]: the runs in order, reversed every other round (so drift in host speed favours no run)."""
    return [(r, x) for r in range(rounds) for x in (runs if r % 2 == 0 else runs[::-1])]


def add_speedups(results: list) -> None:
    """Sets ``speedup_vs_sdpa`` (sdpa ms / this ms) and ``allocated_vs_sdpa`` (fraction) on each result, against
    the sdpa run of the same ``round`` (else the first result of that round); None on CPU for the memory."""
    for r in results:
        same = [x for x in results if x['round'] == r['round']]
        base = next((x for x in same if x['mode'] == 'sdpa'), same[0])
        r['speedup_vs_sdpa'] = base['iter_ms_median'] / r['iter_ms_median']
        r['allocated_vs_sdpa'] = None if r['peak_allocated_mib'] is None else \
            r['peak_allocated_mib'] / base['peak_allocated_mib'] - 1


def median_phases(phases: list) -> dict:
    """Median host and GPU ms per phase over steps (``StepMarks.phases`` of each); GPU None on CPU."""
    return {
        k: {
            clock: None if phases[0][k][clock] is None else statistics.median(p[k][clock] for p in phases)
            for clock in ('host', 'gpu')
        }
        for k in STEP_PHASES
    }


def build_model(cfg_path, mode, attn_dtype, device, voxel_impl=None, cfg_options=None):
    """The config's model, randomly initialised, on ``device`` in train mode. ``mode`` None or 'config' keeps
    the config's ``bias_mode``."""
    from mmdet3d.registry import MODELS
    from projects.mmdet3d_plugin.utils import load_config
    cfg = load_config(cfg_path, cfg_options)
    if cfg.model.get('img_backbone'):
        cfg.model.img_backbone.init_cfg = None  # no pretrained file needed for timing
    if mode not in (None, 'config'):
        cfg.model.pts_bbox_head.bias_mode = mode
    if attn_dtype is not None:
        cfg.model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_dtype = attn_dtype
    if voxel_impl is not None:
        cfg.model.data_preprocessor.voxel_impl = voxel_impl
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device).train()


def profile_once(args, run, name):
    """Profile one ``run()`` (torch.profiler, CPU + CUDA activities); print and write the top ``args.profile``
    operators by self CUDA time and by self CPU time, with the step's CPU and CUDA totals, to ``<out>/<name>.txt``."""
    from torch.profiler import ProfilerActivity, profile
    on_cuda = torch.device(args.device).type == 'cuda'  # a CPU run on a GPU machine profiles the host only
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    _sync(torch.device(args.device))
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        run()
        _sync(torch.device(args.device))
    wall = (time.perf_counter() - t0) * 1000
    averages = prof.key_averages()
    text = f'# {name}: one profiled call, {wall:.1f} ms wall (profiler overhead included)\n'
    sorts = (['self_cuda_time_total'] if on_cuda else []) + ['self_cpu_time_total']
    for sort in sorts:  # where the GPU time goes, then where the host time goes
        table = averages.table(sort_by=sort, row_limit=args.profile, max_name_column_width=60)
        text += f'\n## top {args.profile} by {sort}\n\n{table}\n'
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, name + '.txt'), 'w') as f:
        f.write(text)


def benchmark_batch(args, head, device) -> dict:
    """The synthetic batch of the run (seed 0): ``args.batch`` samples of ``args.points`` points, ``args.cams``
    images of ``args.img_hw`` and ``args.num_gt`` GT boxes each, for the modalities the head uses."""
    from projects.mmdet3d_plugin.models.synthetic_inputs import synthetic_batch
    return synthetic_batch(
        args.batch,
        head.pc_range.tolist(),
        num_gt=args.num_gt,
        num_points=args.points,
        num_cams=args.cams,
        img_hw=tuple(args.img_hw),
        device=device,
        seed=0,
        with_points=head.use_bev,
        with_img=head.use_img)


def run_mode(args, mode):
    from mmdet3d.utils import register_all_modules
    from projects.mmdet3d_plugin.engine import sparse_conv_backend
    register_all_modules(init_default_scope=True)
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    torch.manual_seed(0)
    model = build_model(args.config, mode, args.attn_dtype, device, args.voxel_impl, args.cfg_options)
    head = model.pts_bbox_head
    if args.amp == 'config':  # the config's optimizer wrapper: its AMP dtype, loss scaling, clipping, groups
        from mmengine.optim import build_optim_wrapper

        from projects.mmdet3d_plugin.utils import load_config
        optim_wrapper = build_optim_wrapper(model, load_config(args.config, args.cfg_options).optim_wrapper)
        amp = None  # optim_wrapper.optim_context(model), entered anew every step
    else:
        optim_wrapper = None
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if args.amp == 'bf16' else nullcontext()
    batch = benchmark_batch(args, head, device)
    timer = ModuleTimer(model, device, methods={name: (head, name.split('.')[-1]) for name in TRAIN_METHODS})
    times, parts, phases, losses = [], [], [], []
    marks = StepMarks(device)

    def train_step():
        marks.mark('start')
        with amp or optim_wrapper.optim_context(model):
            data = model.data_preprocessor(batch, training=True)
            loss_dict = model(**data, mode='loss')
        loss = sum(v for v in loss_dict.values())
        marks.mark('forward')
        if optim_wrapper is not None:  # OptimWrapper.update_params, split for the phase times
            optim_wrapper.backward(optim_wrapper.scale_loss(loss))
            marks.mark('backward')
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            marks.mark('backward')
            torch.nn.utils.clip_grad_norm_(model.parameters(), 35)
            opt.step()
        marks.mark('optimizer')
        return loss.detach()

    for step in range(args.warmup + args.steps):
        if step == args.warmup and cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        timer.reset()
        _sync(device)
        t0 = time.perf_counter()
        loss = train_step()
        _sync(device)
        if step >= args.warmup:
            times.append((time.perf_counter() - t0) * 1000)
            parts.append(timer.times())
            phases.append(marks.phases())
            losses.append(loss.item())
    attn = head.transformer.decoder.layers[0].cross_attn
    res = dict(
        mode=mode,
        resolved_path=attn.resolved_mode if attn.use_bias else 'no bias',
        iter_ms_median=statistics.median(times),
        iter_ms_all=times,
        peak_allocated_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        peak_reserved_mib=torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
        forward_ms_median={k: statistics.median(p.get(k, 0.0) for p in parts)
                           for k in parts[0]},
        phase_ms_median=median_phases(phases),
        loss_last=losses[-1],
        amp=args.amp or 'off',
        optim_wrapper=type(optim_wrapper).__name__ if optim_wrapper is not None else 'AdamW (benchmark)',
        num_queries_train=head.num_query +
        args.num_gt * min(head.dn_cfg['scalar'], head.num_query // max(args.num_gt, 1)),
        attn_dtype=str(head.transformer.decoder.layers[0].cross_attn_dtype),
        voxel_impl=getattr(model.data_preprocessor, 'voxel_impl', 'mmcv'),
        sparse_conv_backend=sparse_conv_backend(model)['backend'])
    timer.remove()
    if args.profile:
        profile_once(args, train_step, f'model_benchmark_profile_{mode}' + ('_' + args.amp if args.amp else ''))
    model = optim_wrapper = batch = loss = None  # free the GPU memory before the next run (closures hold names)
    release_memory(device)
    return res


def _mib(x):
    return 'n/a' if x is None else f'{x:.0f}'


PRECISION_TEXT = {
    None:
    'fp32 outside the attention core, AdamW',
    'bf16':
    'bf16 autocast with fp32 islands, AdamW',
    'config':
    "the config's own optim_wrapper (its AMP dtype and loss scaling, clipping, parameter groups; "
    'fp32 islands inside the model)'
}


def to_markdown(args, results, device):
    r0 = results[0]
    lines = [
        f'# CMT training step per attention path, {device}',
        '',
        f'config `{args.config}`; batch {args.batch}, {args.cams} x {args.img_hw[0]}x{args.img_hw[1]} images, '
        f'{args.points} points/sample, {args.num_gt} GT/sample (train queries {r0["num_queries_train"]}); '
        f'{PRECISION_TEXT[args.amp]}; attention core dtype {r0["attn_dtype"]}; '
        f'voxelization {r0["voxel_impl"]}; sparse-conv backend **{r0.get("sparse_conv_backend")}**; median of '
        f'{args.steps} steps after {args.warmup} warm-up; step = voxelization + forward + loss + backward + '
        f'{r0.get("optim_wrapper", "AdamW")} step.',
        '',
        '| round | path (ran) | iter ms (median) | speed-up vs sdpa (same round) | peak allocated MiB |'
        ' peak reserved MiB | allocated vs sdpa |',
        '| --- | --- | --- | --- | --- | --- | --- |',
    ]
    for r in results:
        saved = 'n/a' if r['allocated_vs_sdpa'] is None else f'{100 * r["allocated_vs_sdpa"]:+.0f}%'
        lines.append(f'| {r["round"] + 1} | {r["mode"]} ({r["resolved_path"]}) | {r["iter_ms_median"]:.1f} '
                     f'| {r["speedup_vs_sdpa"]:.2f}x | {_mib(r["peak_allocated_mib"])} '
                     f'| {_mib(r["peak_reserved_mib"])} | {saved} |')
    lines += [
        '', 'Forward time per module (ms, median; backward not split; `pts_bbox_head.loss` is the head\'s whole '
        'training call: DN queries, token encodings, transformer, task heads and losses; '
        '`pts_bbox_head.loss_by_feat` its losses, Hungarian matching included):', '',
        '| path | ' + ' | '.join(TRAIN_PARTS) + ' |', '| --- ' * (len(TRAIN_PARTS) + 1) + '|'
    ]
    label = (lambda r: f'{r["mode"]} (round {r["round"] + 1})') if args.rounds > 1 else (lambda r: r['mode'])
    for r in results:
        lines.append(f'| {label(r)} | ' + ' | '.join(f'{r["forward_ms_median"].get(m, 0.0):.1f}'
                                                     for m in TRAIN_PARTS) + ' |')
    lines += [
        '', 'Step phases (ms, median; host: the Python thread issuing the phase, its waits on the GPU included; '
        "GPU: the phase's span on the GPU timeline, from CUDA events recorded at the boundaries without "
        'synchronizing; GPU ms no larger than host ms: the GPU waited for launches, the phase is bound by the '
        'host):', '', '| path | ' + ' | '.join(f'{p} host | {p} GPU' for p in STEP_PHASES) + ' |',
        '| --- ' * (2 * len(STEP_PHASES) + 1) + '|'
    ]
    for r in results:
        cells = [(r['phase_ms_median'][p]['host'], r['phase_ms_median'][p]['gpu']) for p in STEP_PHASES]
        lines.append(f'| {label(r)} | ' + ' | '.join(f'{h:.1f} | {_ms(g)}' for h, g in cells) + ' |')
    if args.rounds > 1:
        lines += [
            '', f'Over {args.rounds} rounds (median): ' +
            ', '.join(f'{m} {statistics.median(r["iter_ms_median"] for r in results if r["mode"] == m):.1f} ms, '
                      f'{statistics.median(r["speedup_vs_sdpa"] for r in results if r["mode"] == m):.2f}x'
                      for m in dict.fromkeys(r['mode'] for r in results)) + '.'
        ]
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------- --inference
def _autocast(device, precision):
    dtype = PRECISIONS[precision]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def run_inference(args, mode, precision, cuda_graph='off', sparse_fp16='off'):
    """Time ``args.steps`` predict calls (after ``args.warmup``) of a freshly built model; see the module doc."""
    from mmdet3d.utils import register_all_modules
    from projects.mmdet3d_plugin.engine import find_bias_attention, sparse_conv_backend, summarize_bias_mode
    register_all_modules(init_default_scope=True)
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    torch.manual_seed(0)
    inside_graph = GRAPHED_MODULES[cuda_graph]
    options = dict(args.cfg_options or {}, **GRAPH_SWITCHES[cuda_graph],
                   **{'model.sparse_conv_fp16_inference': sparse_fp16 == 'on'})
    model = build_model(args.config, mode, args.attn_dtype, device, args.voxel_impl, options).eval()
    head = model.pts_bbox_head
    batch = benchmark_batch(args, head, device)
    timer = ModuleTimer(
        model,
        device,
        tuple(p for p in INFER_PARTS if p not in inside_graph),
        methods={
            'pts_bbox_head': (head, 'predict'),
            'bbox_decode': (getattr(head, 'bbox_coder', None), 'decode')
        })
    if cuda:
        torch.cuda.synchronize()
        allocated_before = torch.cuda.memory_allocated() / 2**20  # weights + inputs
    wall, device_total, parts = [], [], []

    def predict_call():
        with torch.no_grad(), _autocast(device, precision):
            return model(**model.data_preprocessor(batch, training=False), mode='predict')

    with torch.no_grad():
        for step in range(args.warmup + args.steps):
            if step == args.warmup and cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            timer.reset()
            start, end = timer.new_event(), timer.new_event()
            _sync(device)
            t0 = time.perf_counter()
            start.record()
            with _autocast(device, precision):
                data = model.data_preprocessor(batch, training=False)
                results = model(**data, mode='predict')
            end.record()
            _sync(device)
            if step >= args.warmup:
                wall.append((time.perf_counter() - t0) * 1000)
                device_total.append(start.elapsed_time(end))
                parts.append(timer.times())
    timer.remove()
    if args.profile:
        profile_once(args, predict_call, f'model_inference_profile_{mode}_{precision}_graph_{cuda_graph}')
    attention = find_bias_attention(model)
    sparse = sparse_conv_backend(model)
    preds = results[0].pred_instances_3d
    wall_median = statistics.median(wall)
    res = dict(
        mode=mode,
        precision=precision,
        cuda_graph=cuda_graph,
        sparse_fp16=sparse_fp16,
        sparse_precision='fp16' if sparse_fp16 == 'on' and cuda else 'fp32',  # the option acts on CUDA only
        autocast_dtype=None if PRECISIONS[precision] is None else str(PRECISIONS[precision]),
        batch=args.batch,
        # the bias_mode the config asked for, and the path the modules ran (their resolved_mode)
        bias_mode=','.join(sorted({m['bias_mode']
                                   for m in attention})) or None,
        resolved_path=summarize_bias_mode(attention),
        attention_modules=attention,
        sparse_conv_backend=sparse['backend'],
        sparse_conv=sparse,
        wall_ms_median=wall_median,
        wall_ms_mean=statistics.mean(wall),
        wall_ms_min=min(wall),
        wall_ms_all=wall,
        fps=args.batch * 1000.0 / wall_median,
        timer='cuda events' if cuda else 'host perf_counter (no CUDA events on CPU)',
        event_ms_median=statistics.median(device_total) if cuda else None,  # CUDA events: GPU only
        part_ms_median={k: statistics.median(p[k] for p in parts)
                        for k in INFER_PARTS if all(k in p for p in parts)},
        peak_allocated_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        peak_reserved_mib=torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
        allocated_before_mib=allocated_before if cuda else None,
        num_boxes=int(preds.scores_3d.numel()),
        score_dtype=str(preds.scores_3d.dtype),
        num_queries=int(head.num_query),
        attn_dtype=str(head.transformer.decoder.layers[0].cross_attn_dtype),
        voxel_impl=getattr(model.data_preprocessor, 'voxel_impl', 'mmcv'))
    model = batch = data = results = None  # free the GPU memory before the next run (closures hold names)
    release_memory(device)
    return res


def _ms(x):
    return 'n/a' if x is None else f'{x:.2f}'


def inference_markdown(args, results, device):
    r0 = results[0]
    lines = [
        f'# CMT inference (predict), {device}',
        '',
        f'config `{args.config}`; batch {args.batch}, {args.cams} x {args.img_hw[0]}x{args.img_hw[1]} images, '
        f'{args.points} points/sample; {r0["num_queries"]} queries; voxelization {r0["voxel_impl"]}; attention core '
        f'dtype {r0["attn_dtype"]}; sparse-conv backend **{r0["sparse_conv_backend"]}**; median of {args.steps} '
        f'calls after {args.warmup} warm-up; a call = data preprocessor (voxelization + image normalisation) + '
        f'predict (features, head, box decoding), eval mode, no_grad; part times: {r0["timer"]}.',
        '',
        '| round | bias_mode (ran) | precision | CUDA graphs | sparse encoder | wall ms/call (median) | FPS '
        '| CUDA-event ms (median) | peak allocated MiB | peak reserved MiB |',
        '| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
    ]
    for r in results:
        lines.append(
            f'| {r["round"] + 1} | {r["bias_mode"]} ({r["resolved_path"]}) | {r["precision"]} | {r["cuda_graph"]} '
            f'| {r["sparse_precision"]} | {r["wall_ms_median"]:.2f} '
            f'| {r["fps"]:.2f} | {_ms(r["event_ms_median"])} | {_mib(r["peak_allocated_mib"])} '
            f'| {_mib(r["peak_reserved_mib"])} |')
    parts = [p for p in INFER_PARTS if any(p in r['part_ms_median'] for r in results)]
    lines += [
        '', 'Time per part (ms, median; `pts_bbox_head` is the whole head predict, its transformer, task head '
        'and box decoding are inside it):', '',
        '| part | ' + ' | '.join(f'{r["resolved_path"]} {r["precision"]}' +
                                 (f' graph {r["cuda_graph"]}' if r['cuda_graph'] != 'off' else '') +
                                 (' sparse fp16' if r['sparse_precision'] == 'fp16' else '') +
                                 (f' (round {r["round"] + 1})' if args.rounds > 1 else '')
                                 for r in results) + ' |', '| --- ' + '| ---: ' * len(results) + '|'
    ]
    for part in parts:
        lines.append(f'| {part} | ' + ' | '.join(_ms(r['part_ms_median'].get(part)) for r in results) + ' |')
    return '\n'.join(lines) + '\n'


def main_inference(args, device_name):
    results, failed = [], []
    runs = [(m, p, g, s) for m in args.modes for p in args.precision for g in args.cuda_graph for s in args.sparse_fp16]
    for rnd, (mode, precision, graph, sparse_fp16) in run_order(runs, args.rounds):
        tag = f'[{mode} {precision} cuda_graph={graph} sparse_fp16={sparse_fp16}]'
        t0 = time.time()
        try:
            results.append(dict(run_inference(args, mode, precision, graph, sparse_fp16), round=rnd))
        except Exception as e:  # report and go on with the other runs
            print(f'{tag} failed: {type(e).__name__}: {e}', flush=True)
            failed.append(
                dict(
                    mode=mode,
                    precision=precision,
                    cuda_graph=graph,
                    sparse_fp16=sparse_fp16,
                    round=rnd,
                    error=f'{type(e).__name__}: {e}'))
            release_memory(torch.device(args.device))
            continue
        r = results[-1]
        print(
            f'{tag} {r["wall_ms_median"]:.2f} ms/call ({r["fps"]:.2f} FPS), peak alloc '
            f'{_mib(r["peak_allocated_mib"])} MiB, attention {r["resolved_path"]}, sparse conv '
            f'{r["sparse_conv_backend"]} ({time.time() - t0:.0f} s)',
            flush=True)
    if not results:
        sys.exit('no run succeeded: ' + '; '.join(f'{f["mode"]} {f["precision"]}: {f["error"]}' for f in failed))
    md = inference_markdown(args, results, device_name)
    print(md)
    os.makedirs(args.out, exist_ok=True)
    stem = osp.join(args.out, 'model_inference')
    with open(stem + '.json', 'w') as f:
        json.dump(
            dict(
                device=device_name,
                torch=torch.__version__,
                cuda=torch.version.cuda,
                args=vars(args),
                results=results,
                failed=failed),
            f,
            indent=2,
            default=str)
    with open(stem + '.md', 'w') as f:
        f.write(md)
    print(f'wrote {stem}.json and {stem}.md')
    return results


def main(argv=None):
    args = parse_args(argv)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init log
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('benchmark_model.py needs a CUDA device (or --device cpu for a smoke run)')
    device = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU (smoke run)'
    if args.inference:
        return main_inference(args, device)
    results = []
    for rnd, mode in run_order(args.modes, args.rounds):
        t0 = time.time()
        try:
            results.append(dict(run_mode(args, mode), round=rnd))
        except Exception as e:  # report and go on with the other paths
            print(f'[{mode}] failed: {type(e).__name__}: {e}', flush=True)
            release_memory(torch.device(args.device))
            continue
        r = results[-1]
        print(
            f'[{mode}] {r["iter_ms_median"]:.1f} ms/iter, peak alloc {_mib(r["peak_allocated_mib"])} MiB, '
            f'reserved {_mib(r["peak_reserved_mib"])} MiB, loss {r["loss_last"]:.3f} ({time.time() - t0:.0f} s)',
            flush=True)
    if not results:
        sys.exit('no mode ran')
    add_speedups(results)
    md = to_markdown(args, results, device)
    print(md)
    os.makedirs(args.out, exist_ok=True)
    stem = osp.join(
        args.out, 'model_benchmark' + {
            None: '',
            'bf16': '_amp',
            'config': '_config_amp'
        }[args.amp] + ('_mmcv_voxelization' if results[0]['voxel_impl'] == 'mmcv' else ''))
    with open(stem + '.json', 'w') as f:
        json.dump(
            dict(device=device, torch=torch.__version__, args=vars(args), results=results), f, indent=2, default=str)
    with open(stem + '.md', 'w') as f:
        f.write(md)
    print(f'wrote {stem}.json and {stem}.md')
    return results


if __name__ == '__main__':
    main()
