"""Training as users run it, on the CPU and the tiny synthetic set: the README demo command, resume that
repeats the uninterrupted loss curve, and tools/dist_train.sh with two gloo processes."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'projects/configs/demo/cmt_demo_fusion_pillar_r18.py')


def _env():
    # CPU runs also on a GPU machine: the same numbers as in CI, no Triton autotuning in every subprocess, and
    # tools/dist_train.sh's two processes use gloo instead of two NCCL ranks on one GPU
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), CUDA_VISIBLE_DEVICES='')


def _run(cmd, timeout=600):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=_env())
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def _iter_config(tmp_path, data_root, name, max_iters, ckpt_interval):
    """The demo config on `data_root` with an iteration-based loop, a per-iteration log, no validation."""
    from reliability_helpers import config_file, iteration_config, load_config
    cfg = iteration_config(load_config(data_root), max_iters, ckpt_interval)
    # a schedule that outlasts the interrupted run, so the resumed half must restore its state
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0, end=20)]
    cfg.randomness = dict(seed=123)
    return config_file(tmp_path, cfg, name)


def _scalars(work_dir):
    """{iteration: record} from the newest run's vis_data/scalars.json."""
    runs = sorted(d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d, 'vis_data')))
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        rows = [json.loads(line) for line in f]
    return {r['step']: r for r in rows if 'loss' in r}


def test_readme_demo_command(synthetic_root, tmp_path):
    """tools/run_demo.py (what `bash tools/quickstart.sh demo` runs) trains, evaluates and reports paths."""
    wd = tmp_path / 'demo'
    proc = _run([
        sys.executable, 'tools/run_demo.py', '--data', synthetic_root, '--scenes', '2', '--samples-per-scene', '4',
        '--seed', '3', '--iters', '3', '--work-dir',
        str(wd)
    ])
    assert '== demo done ==' in proc.stdout
    summary = json.loads((wd / 'demo_summary.json').read_text())
    for key in ('log', 'checkpoint', 'memory_summary', 'scalars'):
        assert osp.isfile(summary[key]), (key, summary[key])
    assert set(summary['metrics']) == {'mAP', 'NDS'}
    assert 'rss_mib' in open(summary['log']).read()
    mem = json.loads(open(summary['memory_summary']).read())
    assert mem['device'].startswith('cpu')
    # the ending table and the pictures (tools/run_demo.py; the drawing itself: tests/tools/)
    for row in ('attention path', 'peak memory', 'loss', 'devkit mAP / NDS', 'what to expect', 'pictures'):
        assert f'\n{row}' in proc.stdout, row
    assert 'the GPU demo' in proc.stdout
    assert summary['attention_path'] == 'auto -> exact'  # CPU: auto resolves to the exact factors
    assert summary['peak_memory']['what'].startswith('peak RSS') and summary['peak_memory']['mib'] > 100
    assert summary['loss']['last_iter'] == 3 and summary['loss']['start'] > 0
    pics = summary['pictures']
    assert len(pics['bev']) == 3 and len(pics['camera']) == 1 and osp.isfile(pics['curves'])
    assert all(osp.isfile(p) and osp.getsize(p) > 1000 for p in pics['bev'] + pics['camera'])
    assert osp.isfile(pics['results_json'])
    # the demo config's 'auto' is recorded as the path that ran ('exact' on CPU)
    assert mem['bias_mode'] == 'exact' and {m['bias_mode'] for m in mem['attention_modules']} == {'auto'}
    # the pillar demo has no sparse convolution; the train-start log line says so
    assert mem['sparse_conv_backend'] is None and mem['sparse_conv']['num_sparse_convs'] == 0
    assert 'GPUMemoryHook: sparse-conv backend = None (0 sparse convolutions' in open(summary['log']).read()


def test_resume_repeats_the_uninterrupted_loss_curve(synthetic_root, tmp_path):
    full = _iter_config(tmp_path, synthetic_root, 'full', max_iters=20, ckpt_interval=20)
    first = _iter_config(tmp_path, synthetic_root, 'first', max_iters=10, ckpt_interval=10)
    second = _iter_config(tmp_path, synthetic_root, 'second', max_iters=20, ckpt_interval=10)
    _run([sys.executable, 'tools/train.py', full, '--work-dir', str(tmp_path / 'full')])
    _run([sys.executable, 'tools/train.py', first, '--work-dir', str(tmp_path / 'split')])
    assert osp.isfile(tmp_path / 'split' / 'iter_10.pth')
    _run([sys.executable, 'tools/train.py', second, '--work-dir', str(tmp_path / 'split'), '--resume'])

    ref = _scalars(tmp_path / 'full')
    resumed = _scalars(tmp_path / 'split')
    assert sorted(resumed) == list(range(11, 21)), sorted(resumed)
    for it in range(11, 21):
        assert resumed[it]['loss'] == pytest.approx(ref[it]['loss'], rel=1e-4, abs=1e-5), it
        assert resumed[it]['lr'] == pytest.approx(ref[it]['lr'], rel=1e-6), it
    # the curve is not flat, so equality above is not trivial
    assert len({round(ref[it]['loss'], 4) for it in range(11, 21)}) > 5


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_gloo_processes(synthetic_root, tmp_path):
    cfg = _iter_config(tmp_path, synthetic_root, 'dist', max_iters=3, ckpt_interval=3)
    wd = tmp_path / 'dist'
    env_port = str(_free_port())
    proc = subprocess.run(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir',
                           str(wd)],
                          capture_output=True,
                          text=True,
                          timeout=600,
                          cwd=ROOT,
                          env=dict(_env(), PORT=env_port, PYTHON=sys.executable))
    if proc.returncode != 0:  # whole tails in the captured output (an assertion message gets cut)
        print('--- stdout tail\n' + proc.stdout[-8000:] + '\n--- stderr tail\n' + proc.stderr[-8000:])
    assert proc.returncode == 0, 'tools/dist_train.sh failed: see the captured stdout / stderr tails'
    assert osp.isfile(wd / 'iter_3.pth')
    rows = _scalars(wd)
    assert set(rows) == {1, 2, 3}
    assert all('rss_mib_rank0' in r and 'rss_mib_rank1' in r for r in rows.values()), rows[1].keys()
    mem = json.loads((wd / 'memory_summary.json').read_text())
    assert mem['world_size'] == 2


_SHARED_GPU_RANK = r'''
import sys, torch
# a one-GPU node running rank 1 of 2 (tools/dist_train.sh CONFIG 2 there); the GPU calls are faked
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 1
bound = []
torch.cuda.set_device = bound.append
sys.path.insert(0, 'tools')
import train
rc = train.main([sys.argv[1], '--launcher', 'pytorch', '--check-data'])
print('rc', rc, 'device', bound)
'''


def test_second_rank_on_a_one_gpu_node_gets_past_the_first_log_line(synthetic_root, tmp_path):
    """Rank 1 of 2 on one GPU: mmengine names its log file after CUDA_VISIBLE_DEVICES[LOCAL_RANK] (IndexError
    there, at the first registry lookup that logs); train.py binds the rank to GPU 1 % 1 = 0 before that."""
    cfg = _iter_config(tmp_path, synthetic_root, 'rank1', max_iters=1, ckpt_interval=1)
    env = dict(_env(), CUDA_VISIBLE_DEVICES='0', LOCAL_RANK='1', RANK='1', LOCAL_WORLD_SIZE='2', WORLD_SIZE='2')
    proc = subprocess.run([sys.executable, '-c', _SHARED_GPU_RANK, cfg],
                          capture_output=True,
                          text=True,
                          timeout=300,
                          cwd=ROOT,
                          env=env)
    assert 'rc 0 device [0]' in proc.stdout, (proc.stdout[-2000:], proc.stderr[-3000:])
    assert 'data check passed' in proc.stdout
