"""GPUMemoryHook on a tiny mmengine Runner: the logged figures are real.

A toy model allocates buffers of known size inside ``forward`` at chosen
iterations; the test finds exactly that growth in the message hub scalars
(``vis_data/scalars.json``), in the text log line and in the summary JSON.
"""
import mmap
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from projects.mmdet3d_plugin.engine import GPUMemoryHook, ProcessRSSProbe, find_bias_attention, summarize_bias_mode
from tests.engine.memory_hook_toy import FakeBiasAttention, ToyModel, read_outputs, read_tensorboard, train_toy


def logged_value(log, it, max_iters, key):
    """The value of ``key`` on the text-log line of training iteration ``it``
    (``it=None``: ``log`` is the line)."""
    line = log
    if it is not None:
        m = re.search(rf'Iter\(train\) \[\s*{it}/{max_iters}\].*', log)
        assert m, f'no log line for iteration {it}'
        line = m.group(0)
    m = re.search(rf'(?<![\w]){key}: ([0-9.]+)', line)
    assert m, f'{key} missing in log line: {line}'
    return float(m.group(1))


def test_cpu_rss_growth_is_logged(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('CPU path: the hook logs CUDA memory when CUDA is present')
    keep_mib, transient_mib = 200, 300
    # iterations 1-based; windows of 2: [1,2] [3,4] [5,6] [7,8] [9,10]
    model = ToyModel(keep={5: keep_mib}, transient={7: transient_mib})
    train_toy(tmp_path, model, max_iters=10, interval=2, tensorboard=True)
    scalars, log, summary = read_outputs(str(tmp_path))
    board = read_tensorboard(str(tmp_path))

    for it in (2, 4, 6, 8, 10):
        for key in ('rss_mib', 'max_rss_mib'):
            assert logged_value(log, it, 10, key) == pytest.approx(scalars[it][key], abs=1e-3)
            assert board[key][it] == pytest.approx(scalars[it][key], rel=1e-6)
    # the kept buffer: RSS grows by its size between the windows around it
    growth = scalars[6]['rss_mib'] - scalars[4]['rss_mib']
    assert keep_mib * 0.98 < growth < keep_mib * 1.05, growth
    assert scalars[6]['max_rss_mib'] >= scalars[6]['rss_mib']
    # the transient buffer: no lasting growth, but the window's peak shows it
    assert abs(scalars[8]['rss_mib'] - scalars[6]['rss_mib']) < 5
    spike = scalars[8]['max_rss_mib'] - scalars[8]['rss_mib']
    assert transient_mib * 0.98 < spike < transient_mib * 1.05, spike
    if ProcessRSSProbe().can_reset:  # peak is per window, not lifetime
        assert scalars[10]['max_rss_mib'] - scalars[10]['rss_mib'] < 10
        assert scalars[4]['max_rss_mib'] < scalars[6]['rss_mib'] - 150

    assert summary['device'] == 'cpu (process RSS)'
    assert summary['bias_mode'] == 'exact'
    assert summary['world_size'] == 1 and summary['ranks'][0]['rank'] == 0
    peak = summary['overall']['train']['max_rss_mib']
    assert peak['iter'] == 7 and peak['rank'] == 0
    assert peak['mib'] == pytest.approx(scalars[8]['max_rss_mib'], abs=1e-3)
    assert 'GPUMemoryHook: attention bias_mode = exact' in log
    assert 'memory_summary.json' in log and '"max_rss_mib"' in log


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_peak_allocated_is_logged(tmp_path):
    keep_mib, transient_mib = 128, 256
    model = ToyModel(keep={5: keep_mib}, transient={5: transient_mib})
    train_toy(tmp_path, model, max_iters=10, interval=2)
    scalars, log, summary = read_outputs(str(tmp_path))

    for key in ('mem_peak_alloc_mib', 'mem_peak_reserved_mib', 'mem_alloc_mib', 'mem_device_used_mib'):
        assert logged_value(log, 6, 10, key) == pytest.approx(scalars[6][key], abs=1e-3)
    kept = scalars[6]['mem_alloc_mib'] - scalars[4]['mem_alloc_mib']
    assert kept == pytest.approx(keep_mib, rel=0.01)
    peak = scalars[6]['mem_peak_alloc_mib'] - scalars[4]['mem_peak_alloc_mib']
    assert peak == pytest.approx(keep_mib + transient_mib, rel=0.01)
    # per window: the next window no longer holds the transient peak
    after = scalars[8]['mem_peak_alloc_mib'] - scalars[4]['mem_peak_alloc_mib']
    assert after == pytest.approx(keep_mib, rel=0.01)
    assert scalars[6]['mem_peak_reserved_mib'] >= scalars[6]['mem_peak_alloc_mib']
    assert scalars[6]['mem_device_used_mib'] >= scalars[6]['mem_alloc_mib']

    assert summary['device'].startswith('cuda')
    top = summary['overall']['train']['mem_peak_alloc_mib']
    assert top['iter'] == 5
    assert summary['ranks'][0]['device_name'] == torch.cuda.get_device_name()


def test_bias_mode_found_and_summarized():
    model = nn.ModuleDict(
        dict(dec=nn.ModuleList([FakeBiasAttention('triton'), FakeBiasAttention('triton')]), other=nn.Linear(2, 2)))
    found = find_bias_attention(model)
    assert [m['name'] for m in found] == ['dec.0', 'dec.1']
    assert found[0] == dict(
        name='dec.0', type='FakeBiasAttention', bias_mode='triton', use_bias=True, resolved_mode=None)
    assert summarize_bias_mode(found) == 'triton'
    model['dec'].append(FakeBiasAttention('sdpa', use_bias=False))
    assert summarize_bias_mode(find_bias_attention(model)) == 'none,triton'
    assert summarize_bias_mode(find_bias_attention(nn.Linear(2, 2))) is None


def test_bias_mode_reports_the_resolved_path():
    """'auto' modules are summarized by the path they ran, once they ran."""
    model = nn.ModuleList([FakeBiasAttention('auto'), FakeBiasAttention('auto')])
    assert summarize_bias_mode(find_bias_attention(model)) == 'auto'
    for m in model:
        m.resolved_mode = 'triton'
    found = find_bias_attention(model)
    assert [m['resolved_mode'] for m in found] == ['triton', 'triton']
    assert summarize_bias_mode(found) == 'triton'
    model[1].resolved_mode = 'exact'
    assert summarize_bias_mode(find_bias_attention(model)) == 'exact,triton'


def test_bad_interval_is_rejected():
    with pytest.raises(ValueError, match='interval'):
        GPUMemoryHook(interval=0)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_gloo_are_gathered(tmp_path):
    """Two CPU processes (gloo): each rank's RSS is logged under its key; at the end no DDP model (which holds the
    gloo group) is left for the interpreter's exit."""
    keep_mib = 100
    here = os.path.dirname(os.path.abspath(__file__))
    worker = os.path.join(here, 'dist_memory_worker.py')
    env = dict(
        os.environ,
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(_free_port()),
        WORLD_SIZE='2',
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1')
    procs = [
        subprocess.Popen([sys.executable, worker, str(tmp_path), str(keep_mib)],
                         env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                         cwd=here,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True) for r in range(2)
    ]
    try:
        outs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
        assert 'DDP models alive after teardown: 0' in out, out[-3000:]  # none left to the interpreter's exit
    scalars, log, summary = read_outputs(str(tmp_path))

    keys = {'rss_mib_rank0', 'rss_mib_rank1', 'max_rss_mib_rank0', 'max_rss_mib_rank1'}
    assert keys <= set(scalars[4]) and 'rss_mib' not in scalars[4]
    grow = [scalars[4][f'rss_mib_rank{r}'] - scalars[2][f'rss_mib_rank{r}'] for r in range(2)]
    assert abs(grow[0]) < 5, grow
    assert keep_mib * 0.98 < grow[1] < keep_mib * 1.05, grow
    assert logged_value(log, 4, 6, 'rss_mib_rank1') == pytest.approx(scalars[4]['rss_mib_rank1'], abs=1e-3)

    assert summary['world_size'] == 2
    assert [r['rank'] for r in summary['ranks']] == [0, 1]
    rank1 = summary['ranks'][1]['phases']['train']['max_rss_mib']
    assert rank1['iter'] == 3
    assert rank1['mib'] >= scalars[4]['rss_mib_rank1']
    assert summary['attention_modules'][0]['name'] == 'module.attn'


def test_val_loop_peak_is_separate(tmp_path):
    """A spike inside validation shows in val/ figures, not in training's."""
    if torch.cuda.is_available():
        pytest.skip('CPU path: the hook logs CUDA memory when CUDA is present')
    spike_mib = 300
    # calls 1-4 train, 5-8 validation (4 batches), 9-10 train
    model = ToyModel(transient={6: spike_mib})
    train_toy(tmp_path, model, max_iters=6, interval=2, val_interval=4, val_size=8)
    scalars, log, summary = read_outputs(str(tmp_path))

    val = summary['ranks'][0]['phases']['val']['max_rss_mib']
    assert val['iter'] == 2 and val['train_iters_done'] == 4
    # validation runs after iteration 4 and at the end (after iteration 6)
    val_rec, last_val = [r for r in scalars['val'] if 'mse' in r]
    spike = val_rec['max_rss_mib'] - val_rec['rss_mib']
    assert spike_mib * 0.98 < spike < spike_mib * 1.05, spike
    line = re.search(r'Iter\(val\) \[4/4\].*mse.*', log).group(0)
    assert logged_value(line, None, None, 'max_rss_mib') == pytest.approx(val_rec['max_rss_mib'], abs=1e-3)
    if ProcessRSSProbe().can_reset:  # windows before/after are clean
        assert last_val['max_rss_mib'] - last_val['rss_mib'] < 10
        assert scalars[6]['max_rss_mib'] - scalars[6]['rss_mib'] < 10
        train = summary['ranks'][0]['phases']['train']['max_rss_mib']
        assert train['mib'] < val['mib'] - spike_mib * 0.9


def test_rss_probe_without_clear_refs_says_lifetime(monkeypatch, tmp_path):
    """Where the peak cannot be reset the probe reports the lifetime peak."""
    monkeypatch.setattr(ProcessRSSProbe, '_clear_refs', str(tmp_path / 'missing' / 'clear_refs'))
    probe = ProcessRSSProbe()
    assert not probe.can_reset and probe.peak_scope == 'process lifetime'
    before = probe.current()['rss_mib']
    # a new anonymous mapping, every page written: 64 MiB of RSS that no earlier test's freed heap can supply
    buf = mmap.mmap(-1, 64 * 2**20)
    buf.write(b'\x01' * (64 * 2**20))
    assert 60 < probe.current()['rss_mib'] - before < 70
    buf.close()
    probe.reset_peaks()  # a no-op: the 64 MiB stay in the peak
    assert probe.peaks()['max_rss_mib'] >= before + 60
