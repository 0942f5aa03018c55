"""The README's main job: make a synthetic nuScenes-format set (if absent), train a demo CMT config on it,
evaluate it with the official nuScenes metric, draw pictures of its detections and print a short table.

    python tools/run_demo.py [--config CFG] [--data DIR] [--scenes N] [--work-dir DIR] [--iters N | --epochs N]
                             [--cpu] [--score-thr T] [--cfg-options k=v ...]

On a CUDA machine it trains the learning config (projects/configs/demo/cmt_demo_fusion_fit_train.py:
no augmentation, scored by the devkit on its own training scenes) for ``--epochs`` (10, a few minutes) with the
attention core in bf16, and compares the peak memory of one training step with the ``sdpa`` and ``triton``
attention paths on the same batch. On the CPU (or with ``--cpu``) it trains one epoch of the small demo config
(projects/configs/demo/cmt_demo_fusion_pillar_r18.py; its LiDAR branch is pillar-based, so it trains on a CPU):
about 8 minutes on 2 cores, too short to detect anything; it shows that every part runs.
``--iters`` switches to an iteration-based schedule of that length (no learning-rate schedule).

Pictures (WORK_DIR/pictures/): a BEV plot of LiDAR points, GT (green) and predicted (red) boxes for the first
evaluated samples, one camera image with the boxes projected into it, and the loss/memory curves
(tools/analysis_tools/plot_memory.py). ``python tools/misc/visualize_results.py`` draws the same for any results
file.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import Config
from mmengine.runner import Runner

import projects.mmdet3d_plugin  # noqa: F401
from projects.mmdet3d_plugin.datasets.config_utils import retarget_data_root
from projects.mmdet3d_plugin.datasets.synthetic.build import build_synthetic_dataset
from projects.mmdet3d_plugin.utils import CfgOptionsAction, apply_cfg_options
from projects.mmdet3d_plugin.utils.schedules import use_iteration_schedule, use_learning_schedule

DEMO_CONFIG = 'projects/configs/demo/cmt_demo_fusion_pillar_r18.py'
FIT_CONFIG = 'projects/configs/demo/cmt_demo_fusion_fit_train.py'
GPU_EPOCHS = 10
GPU_MAP_TARGET = 0.3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        '--config', default=None, help=f'config to train (default: {FIT_CONFIG} on a GPU, {DEMO_CONFIG} on the CPU)')
    p.add_argument(
        '--data',
        default=osp.join(ROOT, 'data', 'nuscenes-synthetic'),
        help='synthetic set root (generated when absent)')
    p.add_argument('--scenes', type=int, default=10, help='scenes to generate (<= 10: v1.0-mini split names)')
    p.add_argument('--samples-per-scene', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    p.add_argument('--iters', type=int, default=None, help='train this many iterations instead of epochs')
    p.add_argument(
        '--epochs',
        type=int,
        default=None,
        help=f'epochs to train (default: {GPU_EPOCHS} on a GPU with a cosine schedule, 1 on the CPU)')
    p.add_argument('--cpu', action='store_true', help='run on the CPU even when a GPU is visible')
    p.add_argument('--score-thr', type=float, default=0.3, help='predictions drawn in the pictures')
    p.add_argument(
        '--no-memory-comparison',
        action='store_true',
        help='GPU: skip the one-step sdpa vs triton peak-memory comparison')
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, help='config overrides, as in tools/train.py')
    return p.parse_args(argv)


def demo_config(args, on_gpu: bool = False) -> Config:
    """The demo (CPU) or learning (GPU) config pointed at ``args.data``, with the demo's schedule; the test metric
    keeps its nuScenes results JSON under ``WORK_DIR/results`` (the pictures read it)."""
    cfg = Config.fromfile(args.config or osp.join(ROOT, FIT_CONFIG if on_gpu else DEMO_CONFIG))
    retarget_data_root(cfg, osp.abspath(args.data))
    cfg.work_dir = args.work_dir
    if args.iters:
        use_iteration_schedule(cfg, args.iters, ckpt_interval=args.iters)
        cfg.param_scheduler = []
    elif on_gpu:
        use_learning_schedule(cfg, args.epochs or GPU_EPOCHS)
    else:
        epochs = args.epochs or 1
        cfg.train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=epochs, val_interval=epochs + 1)
    if on_gpu:  # as in the learning runs of docs/benchmarks/: attention core in bf16
        cfg.model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_dtype = 'bfloat16'
    cfg.test_evaluator.jsonfile_prefix = osp.join(args.work_dir, 'results')
    apply_cfg_options(cfg, args.cfg_options)
    return cfg


def results_json(cfg) -> str:
    """Where NuScenesMetric writes the results JSON for ``jsonfile_prefix``."""
    return osp.join(cfg.test_evaluator.jsonfile_prefix, 'pred_instances_3d', 'results_nusc.json')


def draw_pictures(cfg, runner, pic_dir: str, score_thr: float) -> dict:
    """BEV + camera pictures of the first three test samples from the metric's results JSON, and the loss/memory
    curves of the training run."""
    from projects.mmdet3d_plugin.utils.result_files import build_info_dataset, load_results
    from projects.mmdet3d_plugin.utils.result_pictures import extent_of, write_result_pictures
    from projects.mmdet3d_plugin.utils.scalar_logs import load_runs, plot
    dataset = build_info_dataset(cfg, 'test')
    path = results_json(cfg)
    results = load_results(path) if osp.isfile(path) else None
    pics = write_result_pictures(
        dataset, results, pic_dir, indices=range(min(3, len(dataset))), score_thr=score_thr, extent=extent_of(cfg))
    pics['curves'] = osp.join(pic_dir, 'loss_memory.png')
    plot(load_runs([runner.log_dir]), None, pics['curves'])
    pics['results_json'] = path if results is not None else None
    return pics


def first_train_batch(cfg) -> dict:
    """One collated batch of the config's training set (built in this process, no workers)."""
    import copy

    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    loader = copy.deepcopy(cfg.train_dataloader)
    loader.num_workers, loader.persistent_workers = 0, False
    return next(iter(Runner.build_dataloader(loader, seed=0)))


def expectation(on_gpu: bool, trained_iters: bool, epochs: int, map_value) -> str:
    """One sentence on what the score means after this schedule."""
    if on_gpu and not trained_iters:
        verdict = 'reached' if map_value is not None and map_value > GPU_MAP_TARGET else 'NOT reached'
        return (f'{epochs} epochs of the learning config, scored on its own training scenes (it shows learning, '
                f'not generalisation): expect mAP > {GPU_MAP_TARGET} ({verdict}); the full run in '
                'docs/benchmarks/ passes 0.9 after 21 epochs.')
    return ('this short CPU run only shows that every part works: mAP and NDS near 0 (about 0.00-0.02) are '
            'expected; the GPU demo (the same command on a CUDA machine) is the one that learns '
            f'(mAP > {GPU_MAP_TARGET} after {GPU_EPOCHS} epochs).')


def main(argv=None):
    args = parse_args(argv)
    if args.cpu:
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    import torch

    from projects.mmdet3d_plugin.utils.demo_report import (format_table, loss_ends, memory_line, peak_memory,
                                                           ran_attention_path, step_peak_memory)
    on_gpu = torch.cuda.is_available() and not args.cpu
    t0 = time.time()
    build_synthetic_dataset(args.data, args.scenes, seed=args.seed, samples_per_scene=args.samples_per_scene)
    t_data = time.time() - t0
    cfg = demo_config(args, on_gpu)
    mem_compare = None
    if on_gpu and not args.no_memory_comparison:  # before training: nothing else on the GPU yet
        print('\n== peak memory of one training step per attention path (sdpa, triton), same batch ==', flush=True)
        batch = first_train_batch(cfg)
        steps = step_peak_memory(cfg.model, batch, ('sdpa', 'triton'))
        mem_compare = dict(line=memory_line(steps, len(batch['data_samples'])), steps=steps)
        print(mem_compare['line'], flush=True)
        del batch
    runner = Runner.from_cfg(cfg)
    runner.train()
    t_train = time.time() - t0 - t_data
    memory_summary = osp.join(args.work_dir, 'memory_summary.json')
    mem_what, mem_mib = peak_memory(memory_summary)  # read before the test loop rewrites the summary
    path_ran = ran_attention_path(runner.model)
    print('\n== evaluating with the official nuScenes devkit (formatting results, matching boxes) ==', flush=True)
    metrics = runner.test()
    t_test = time.time() - t0 - t_data - t_train

    scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    loss = loss_ends(scalars)
    pic_dir = osp.join(args.work_dir, 'pictures')
    pics = draw_pictures(cfg, runner, pic_dir, args.score_thr)

    keys = [k for k in metrics if k.endswith('/mAP') or k.endswith('/NDS')]
    last = osp.join(args.work_dir, 'last_checkpoint')
    ckpt = open(last).read().strip() if osp.isfile(last) else None
    epochs = cfg.train_cfg.get('max_epochs')
    summary = dict(
        device=str(next(runner.model.parameters()).device),
        config=cfg.filename,
        attention_path=path_ran,
        seconds=dict(data=round(t_data, 1), train=round(t_train, 1), test=round(t_test, 1)),
        metrics={k.split('/')[-1]: metrics[k]
                 for k in keys},
        loss=loss,
        peak_memory=dict(what=mem_what, mib=mem_mib),
        memory_comparison=mem_compare,
        pictures=pics,
        log=osp.join(runner.log_dir, f'{runner.timestamp}.log'),
        checkpoint=ckpt,
        memory_summary=memory_summary,
        scalars=scalars)
    with open(osp.join(args.work_dir, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)

    m = summary['metrics']
    schedule = f'{loss["last_iter"]} iterations' + (f' ({epochs} epochs)' if epochs and not args.iters else '')
    rows = [
        ('device', f'{summary["device"]}; {osp.relpath(cfg.filename, ROOT)}, {schedule}'),
        ('time', f'data {t_data:.0f} s, training {t_train:.0f} s, evaluation {t_test:.0f} s'),
        ('attention path', path_ran),
        ('peak memory', f'{mem_mib:.0f} MiB {mem_what}' if mem_mib is not None else mem_what),
        ('loss', f'{loss["start"]:.2f} at the start -> {loss["end"]:.2f} at the end (means of the first and last '
         f'{loss["window"]} of {loss["records"]} log records)'),
        ('devkit mAP / NDS', ', '.join(f'{k} {v:.4f}' for k, v in m.items()) or 'no metric'),
        ('what to expect', expectation(on_gpu, bool(args.iters), epochs, m.get('mAP'))),
    ]
    if mem_compare:
        rows.append(('attention memory', mem_compare['line']))
    rows += [
        ('pictures', f'{pic_dir}/ (bev_*.png: GT green, predictions with score >= {args.score_thr:g} red; '
         f'CAM_FRONT_*.png; loss_memory.png)'),
        ('files', f'{args.work_dir}/demo_summary.json (log, checkpoint, memory summary, results JSON)'),
    ]
    print('\n== demo done ==')
    print(format_table(rows, 'CMT demo: what ran and what it scored'))
    return summary


if __name__ == '__main__':
    main()
