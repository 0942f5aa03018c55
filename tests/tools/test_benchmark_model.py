"""``tools/benchmarks/benchmark_model.py``: the ``--inference`` mode (batch-1 predict timing) in its CPU quick mode, the
training-step mode's smoke run, and the inference run on a GPU."""
import json
import os.path as osp
import time

import pytest
import torch

from tools.benchmarks import benchmark_model as bm

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = 'projects/configs/demo/cmt_demo_fusion_pillar_r18.py'
QUICK = ['--device', 'cpu', '--config', DEMO, '--points', '2000', '--cams', '2', '--img-hw', '96', '256']


def test_inference_defaults_and_training_defaults_stay():
    inf = bm.parse_args(['--inference'])
    assert (inf.batch, inf.steps, inf.warmup, inf.modes, inf.precision) == (1, 20, 5, ['config'], ['fp32', 'fp16'])
    assert inf.config == 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py'
    train = bm.parse_args([])
    assert (train.inference, train.batch, train.steps, train.warmup, train.modes) == \
        (False, 2, 6, 2, ['sdpa', 'exact', 'triton'])
    with pytest.raises(SystemExit):
        bm.parse_args(['--inference', '--precision', 'fp8'])


def test_inference_quick_mode_on_cpu(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    calls = []
    from projects.mmdet3d_plugin.models.dense_heads.cmt_head import CmtHead
    orig = CmtHead.predict

    def spy(self, *args, **kwargs):  # the autocast state the head is called under
        calls.append((torch.is_autocast_enabled('cpu'), torch.get_autocast_dtype('cpu')))
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(CmtHead, 'predict', spy)
    results = bm.main([
        '--inference', *QUICK, '--steps', '2', '--warmup', '0', '--precision', 'fp32', 'bf16', '--modes', 'config',
        'exact', '--out',
        str(tmp_path)
    ])
    # 2 modes x 2 precisions, each 2 timed calls
    assert [(r['mode'], r['precision']) for r in results] == \
        [('config', 'fp32'), ('config', 'bf16'), ('exact', 'fp32'), ('exact', 'bf16')]
    assert [c[0] for c in calls] == [False, False, True, True] * 2
    assert all(dtype == torch.bfloat16 for on, dtype in calls if on)
    with open(tmp_path / 'model_inference.json') as f:
        report = json.load(f)
    assert report['failed'] == [] and report['args']['batch'] == 1 and report['device'] == 'CPU (smoke run)'
    fp32, bf16, exact = report['results'][:3]
    for r in report['results']:
        assert r['batch'] == 1 and len(r['wall_ms_all']) == 2
        assert r['wall_ms_median'] > 0 and r['fps'] == pytest.approx(1000 / r['wall_ms_median'])
        # every part was timed (the demo fusion model has all of them)
        assert set(r['part_ms_median']) == set(bm.INFER_PARTS)
        assert all(v > 0 for v in r['part_ms_median'].values())
        # the head contains its transformer, task head and decoding; the call contains the head
        head = r['part_ms_median']['pts_bbox_head']
        inside = sum(r['part_ms_median'][k]
                     for k in ('pts_bbox_head.transformer', 'pts_bbox_head.task_head', 'bbox_decode'))
        assert inside < head < r['wall_ms_median']
        # GPU-only figures are absent on CPU
        assert r['peak_allocated_mib'] is None and r['peak_reserved_mib'] is None and r['event_ms_median'] is None
        assert r['timer'].startswith('host perf_counter')
        assert r['sparse_conv_backend'] is None and r['sparse_conv']['num_sparse_convs'] == 0  # pillars
        assert r['num_boxes'] > 0 and r['score_dtype'] == 'torch.float32'
    assert fp32['autocast_dtype'] is None and bf16['autocast_dtype'] == 'torch.bfloat16'
    # 'config' keeps the demo's 'auto' (which runs 'exact' on CPU); 'exact' is set on every module
    assert fp32['bias_mode'] == 'auto' and fp32['resolved_path'] == 'exact'
    assert exact['bias_mode'] == 'exact' and exact['resolved_path'] == 'exact'
    assert [m['resolved_mode'] for m in fp32['attention_modules']] == ['exact'] * len(fp32['attention_modules'])
    md = (tmp_path / 'model_inference.md').read_text()
    assert '| auto (exact) | fp32 |' in md and '| auto (exact) | bf16 |' in md and '| bbox_decode |' in md
    assert 'sparse-conv backend **None**' in md


def test_module_timer_wraps_and_restores_methods():

    class Box:

        def decode(self, x):
            return x + 1

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    box = Box()
    timer = bm.ModuleTimer(model, torch.device('cpu'), modules=('0', ), methods={'decode': (box, 'decode')})
    model(torch.zeros(1, 2))
    assert box.decode(1) == 2 and box.decode(2) == 3
    times = timer.times()
    assert set(times) == {'0', 'decode'} and len(timer.events['decode']) == 2
    timer.remove()
    assert 'decode' not in vars(box) and not model[0]._forward_hooks
    timer.reset()
    box.decode(1)
    model(torch.zeros(1, 2))
    assert timer.events == {}


def test_training_step_mode_smoke_run(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    results = bm.main([*QUICK, '--steps', '1', '--warmup', '0', '--modes', 'exact', '--out', str(tmp_path)])
    assert [r['mode'] for r in results] == ['exact'] and results[0]['loss_last'] > 0
    parts = results[0]['forward_ms_median']
    assert set(parts) == set(bm.TRAIN_PARTS)
    # the losses are part of the head's training call, which holds its transformer
    assert parts['pts_bbox_head.loss'] >= parts['pts_bbox_head.loss_by_feat'] + parts['pts_bbox_head.transformer']
    assert (tmp_path / 'model_benchmark.json').is_file() and (tmp_path / 'model_benchmark.md').is_file()
    # the phases split the step: their host times add up to no more than the step's wall clock
    phases = results[0]['phase_ms_median']
    assert set(phases) == set(bm.STEP_PHASES) and all(p['gpu'] is None and p['host'] > 0 for p in phases.values())
    assert sum(p['host'] for p in phases.values()) <= results[0]['iter_ms_median']


def test_rounds_alternate_the_order_and_compare_within_a_round():
    """--rounds: modes reversed every other round; each speed-up / memory change is against the same round's sdpa
    (hand-computed), or the round's first run when sdpa did not run in it."""
    assert bm.run_order(['sdpa', 'auto'], 3) == [(0, 'sdpa'), (0, 'auto'), (1, 'auto'), (1, 'sdpa'), (2, 'sdpa'),
                                                 (2, 'auto')]
    res = [
        dict(round=0, mode='sdpa', iter_ms_median=360.0, peak_allocated_mib=1000.0),
        dict(round=0, mode='auto', iter_ms_median=240.0, peak_allocated_mib=400.0),
        dict(round=1, mode='auto', iter_ms_median=250.0, peak_allocated_mib=410.0),
        dict(round=1, mode='sdpa', iter_ms_median=375.0, peak_allocated_mib=1025.0),
        dict(round=2, mode='exact', iter_ms_median=300.0, peak_allocated_mib=None),
        dict(round=2, mode='auto', iter_ms_median=200.0, peak_allocated_mib=None),
    ]
    bm.add_speedups(res)
    assert [r['speedup_vs_sdpa'] for r in res] == pytest.approx([1.0, 1.5, 1.5, 1.0, 1.0, 1.5])
    assert [r['allocated_vs_sdpa'] for r in res[:4]] == pytest.approx([0.0, -0.6, -0.6, 0.0])
    assert res[4]['allocated_vs_sdpa'] is None and res[5]['allocated_vs_sdpa'] is None


def test_rounds_smoke_run(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    results = bm.main(
        [*QUICK, '--steps', '1', '--warmup', '0', '--modes', 'sdpa', 'exact', '--rounds', '2', '--out',
         str(tmp_path)])
    assert [(r['round'], r['mode']) for r in results] == [(0, 'sdpa'), (0, 'exact'), (1, 'exact'), (1, 'sdpa')]
    text = (tmp_path / 'model_benchmark.md').read_text()
    assert '| exact (round 2) |' in text and 'Over 2 rounds (median): sdpa' in text


def test_inference_rounds_repeat_every_setting_in_alternating_order(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    results = bm.main([
        '--inference', *QUICK, '--steps', '1', '--warmup', '0', '--precision', 'fp32', 'bf16', '--modes', 'exact',
        '--rounds', '2', '--out',
        str(tmp_path)
    ])
    assert [(r['round'], r['precision']) for r in results] == [(0, 'fp32'), (0, 'bf16'), (1, 'bf16'), (1, 'fp32')]
    text = (tmp_path / 'model_inference.md').read_text()
    assert '| 2 | exact (exact) | fp32 |' in text and ' exact fp32 (round 2) |' in text  # table row, part column


def test_step_marks_time_each_phase_on_the_host():
    """StepMarks: each phase's host time is the time between its boundary marks (here: known sleeps)."""
    marks = bm.StepMarks(torch.device('cpu'))
    sleeps = dict(forward=0.12, backward=0.03, optimizer=0.06)  # distinct: a shifted or cumulative split fails
    marks.mark('start')
    for name in bm.STEP_PHASES:
        time.sleep(sleeps[name])
        marks.mark(name)
    phases = marks.phases()
    for name, seconds in sleeps.items():
        assert seconds * 1000 <= phases[name]['host'] < seconds * 1000 + 25, (name, phases[name])
        assert phases[name]['gpu'] is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_inference_on_gpu_reports_cuda_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    results = bm.main([
        '--inference', '--config', DEMO, '--points', '20000', '--cams', '2', '--img-hw', '96', '256', '--steps', '3',
        '--warmup', '1', '--precision', 'fp32', 'fp16', '--out',
        str(tmp_path)
    ])
    assert [r['precision'] for r in results] == ['fp32', 'fp16']
    for r in results:
        assert r['timer'] == 'cuda events' and r['event_ms_median'] > 0
        assert r['peak_allocated_mib'] >= r['allocated_before_mib'] > 0
        assert r['peak_reserved_mib'] >= r['peak_allocated_mib']
        assert r['resolved_path'] in ('triton', 'exact', 'sdpa')
        assert all(v >= 0 for v in r['part_ms_median'].values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_inference_full_config_on_gpu_names_the_sparse_backend(tmp_path, monkeypatch):
    """The full config (SparseEncoder) at its image size, fewer points: the backend is the one mmdet3d built."""
    from mmdet3d.models.layers.spconv import IS_SPCONV2_AVAILABLE
    monkeypatch.chdir(ROOT)
    results = bm.main([
        '--inference', '--points', '30000', '--steps', '2', '--warmup', '1', '--precision', 'fp16', '--out',
        str(tmp_path)
    ])
    r = results[0]
    assert r['sparse_conv']['num_sparse_convs'] > 5
    if IS_SPCONV2_AVAILABLE:
        assert r['sparse_conv_backend'].startswith('spconv 2'), r['sparse_conv']
    else:
        assert r['sparse_conv_backend'] == 'mmcv', r['sparse_conv']
    assert r['part_ms_median']['pts_middle_encoder'] > 0 and r['num_queries'] == 900
    assert r['peak_allocated_mib'] > 0 and r['autocast_dtype'] == 'torch.float16'


def test_profile_writes_the_top_operators(tmp_path, monkeypatch):
    """``--profile ROWS``: one more call under torch.profiler; its top operators land in a text file per run.
    ``--cuda-graph off head all`` builds each choice's model (CPU: the switches are accepted, the eager path runs);
    the modules a choice replays from a graph have no hook time, the others have."""
    monkeypatch.chdir(ROOT)
    results = bm.main([
        '--inference', *QUICK, '--steps', '1', '--warmup', '0', '--precision', 'fp32', '--modes', 'exact',
        '--cuda-graph', 'off', 'head', 'all', '--profile', '4', '--out',
        str(tmp_path)
    ])
    assert [r['cuda_graph'] for r in results] == ['off', 'head', 'all']
    for graph in ('off', 'head', 'all'):
        text = (tmp_path / f'model_inference_profile_exact_fp32_graph_{graph}.txt').read_text()
        rows = [line for line in text.splitlines() if line.strip().startswith('aten::')]
        assert len(rows) == 4, text
    timed = [set(r['part_ms_median']) for r in results]
    assert {'pts_bbox_head.transformer', 'img_backbone', 'pts_backbone'} <= timed[0]
    assert 'pts_bbox_head.transformer' not in timed[1] and {'img_backbone', 'pts_backbone'} <= timed[1]
    assert not {'pts_bbox_head.transformer', 'img_backbone', 'img_neck', 'pts_backbone', 'pts_neck'} & timed[2]
    assert all(r['part_ms_median']['pts_bbox_head'] > 0 and r['part_ms_median']['pts_middle_encoder'] > 0
               for r in results)
