"""``tools/benchmarks/speed_targets.py``: issue #12's verdicts from benchmark JSON files, against hand-computed
ratios and the targets' boundaries."""
import json

import pytest

from tools.benchmarks import speed_targets as st


def _write(tmp_path, name, results):
    path = tmp_path / name
    path.write_text(json.dumps(dict(results=results)))
    return str(path)


def _train(mode, ms, mib, rnd=None, path='triton'):
    r = dict(mode=mode, resolved_path=mode if mode == 'sdpa' else path, iter_ms_median=ms, peak_allocated_mib=mib)
    if rnd is not None:
        r['round'] = rnd
    return r


def test_training_targets_per_round(tmp_path):
    # round 1: 360 / 240 = 1.5x (met at the boundary), 250 ms met, 400 / 1000 - 1 = -60% met;
    # round 2: 251 ms missed, 370 / 251 = 1.474x missed, 460 / 1000 - 1 = -54% missed
    res = [
        _train('sdpa', 360.0, 1000.0, 0),
        _train('auto', 240.0, 400.0, 0),
        _train('auto', 251.0, 460.0, 1),
        _train('sdpa', 370.0, 1000.0, 1)
    ]
    from tools.benchmarks.benchmark_model import add_speedups
    add_speedups(res)
    rows = st.main(['--train', _write(tmp_path, 'train.json', res), '--out', str(tmp_path / 'out')])
    got = [(r['target'], r['run'].split(',')[0], round(r['value'], 3), r['met']) for r in rows]
    assert got == [
        ('training step ms', 'round 1', 240.0, True),
        ('training speed-up vs sdpa', 'round 1', 1.5, True),
        ('training peak memory vs sdpa', 'round 1', -0.6, True),
        ('training step ms', 'round 2', 251.0, False),
        ('training speed-up vs sdpa', 'round 2', round(370 / 251, 3), False),
        ('training peak memory vs sdpa', 'round 2', -0.54, False),
    ]
    md = (tmp_path / 'out' / 'speed_targets.md').read_text()
    assert md.startswith('# Issue #12 speed targets: 3 of 6 rows met')
    assert '| training speed-up vs sdpa | round 2, auto (triton) | 1.47 x | >= 1.50 x | missed |' in md
    assert json.loads((tmp_path / 'out' / 'speed_targets.json').read_text()) == rows


def test_training_file_written_before_rounds(tmp_path):
    """No round / speed-up fields: every auto row against the file's first sdpa run."""
    res = [_train('sdpa', 300.0, 900.0), _train('auto', 200.0, 300.0), _train('auto', 240.0, 300.0)]
    rows = st.main(['--train', _write(tmp_path, 'old.json', res)])
    speedups = [r['value'] for r in rows if r['target'] == 'training speed-up vs sdpa']
    assert speedups == pytest.approx([1.5, 1.25])


def _infer(precision, fps, sparse, rnd=None, graph='all'):
    r = dict(
        precision=precision,
        fps=fps,
        wall_ms_median=1000 / fps,
        bias_mode='config',
        resolved_path='triton',
        cuda_graph=graph,
        sparse_precision=sparse)
    if rnd is not None:
        r['round'] = rnd
    return r


def _attn(row, phase, nq, x, wall_x):
    """A benchmark_attention.py result whose ratio to bias-free SDPA is x by CUDA events and wall_x by wall clock:
    fwd+bwd at the training shape, fwd at the inference shape (the other ratios 1.0)."""
    meta = dict(shape='voxel0100', B=2, H=8, Nq=nq, Nk=22384, D=32, dtype='bfloat16')
    ratios = dict(fwd_x=1.0, fwd_wall_x=1.0, fwd_bwd_x=1.0, fwd_bwd_wall_x=1.0)
    key = 'fwd_bwd' if phase == 'train' else 'fwd'
    ratios.update({f'{key}_x': x, f'{key}_wall_x': wall_x})
    return dict(row=row, phase=phase, meta=meta, **ratios)


def test_inference_and_attention_boundaries(tmp_path):
    infer = [_infer('fp32', 40.0, 'fp32'), _infer('fp16', 24.99, 'fp32', 0), _infer('fp16', 25.0, 'fp16', 1)]
    attn = [
        _attn('triton', 'train', 1800, 1.15, 1.2),  # the verdicts read the CUDA-event ratios, not the wall ones
        _attn('nobias', 'train', 1800, 1.0, 1.0),
        _attn('triton', 'infer', 900, 1.31, 1.29)
    ]
    rows = st.main(
        ['--inference',
         _write(tmp_path, 'inf.json', infer), '--attention',
         _write(tmp_path, 'att.json', attn)])
    assert [(r['target'], r['value'], r['met']) for r in rows] == [
        ('inference FPS (batch 1, fp16)', 24.99, False),
        ('inference FPS (batch 1, fp16)', 25.0, True),
        ('attention fwd+bwd vs bias-free', 1.15, True),
        ('attention fwd vs bias-free', 1.31, False),
    ]
    assert 'sparse encoder fp16' in rows[1]['run'] and 'Nq=900' in rows[3]['run']


def test_inference_is_judged_on_the_graphs_tools_test_runs(tmp_path):
    """With 'all' rows (``tools/test.py --amp --cuda-graph``) in the file, only they count; the head-graph rows are
    printed, marked not judged, whichever side of the limit they fall. Without 'all' rows every fp16 row counts."""
    infer = [
        _infer('fp16', 24.0, 'fp32', 0, graph='head'),
        _infer('fp16', 30.0, 'fp32', 0),
        _infer('fp16', 26.0, 'fp32', 1, graph='head'),
        _infer('fp16', 25.5, 'fp32', 1)
    ]
    out = tmp_path / 'out'
    rows = st.main(['--inference', _write(tmp_path, 'i.json', infer), '--out', str(out)])
    assert [(r['value'], r['met'], r['judged']) for r in rows] == [(24.0, False, False), (30.0, True, True),
                                                                   (26.0, True, False), (25.5, True, True)]
    md = (out / 'speed_targets.md').read_text()
    assert md.startswith('# Issue #12 speed targets: 2 of 2 rows met\n\n2 more rows are printed for comparison')
    assert '| 24.00 FPS (41.67 ms/call) | >= 25.00 FPS | not judged (misses the limit) |' in md
    assert '| 26.00 FPS (38.46 ms/call) | >= 25.00 FPS | not judged (meets the limit) |' in md
    head_only = [r for r in infer if r['cuda_graph'] == 'head']
    rows = st.main(['--inference', _write(tmp_path, 'h.json', head_only), '--out', str(out)])
    assert [r['judged'] for r in rows] == [True, True]
    assert (out / 'speed_targets.md').read_text().startswith('# Issue #12 speed targets: 1 of 2 rows met\n\n| target')


def test_model_rows_name_their_sparse_backend_and_warn_without_spconv(tmp_path):
    """Each model row names the sparse-conv backend its run recorded; a table with a model row that ran without
    spconv opens with a warning naming that backend; none when every run used spconv or had no sparse conv."""
    train = [
        dict(_train('sdpa', 360.0, 1000.0, 0), sparse_conv_backend='mmcv'),
        dict(_train('auto', 240.0, 400.0, 0), sparse_conv_backend='mmcv')
    ]
    from tools.benchmarks.benchmark_model import add_speedups
    add_speedups(train)
    infer = [dict(_infer('fp16', 30.0, 'fp32', 0), sparse_conv_backend='spconv 2.3.8')]
    out = tmp_path / 'out'
    rows = st.main([
        '--train',
        _write(tmp_path, 't.json', train), '--inference',
        _write(tmp_path, 'i.json', infer), '--out',
        str(out)
    ])
    assert rows[0]['run'] == 'round 1, auto (triton), sparse conv mmcv'
    assert rows[-1]['run'].endswith('sparse encoder fp32, sparse conv spconv 2.3.8')
    md = (out / 'speed_targets.md').read_text().splitlines()
    assert md[2].startswith('**Warning: model rows ran with the sparse-conv backend mmcv, not spconv 2**')
    for backend in ('spconv 2.3.8', None):
        for r in train + infer:
            r['sparse_conv_backend'] = backend
        st.main([
            '--train',
            _write(tmp_path, 't.json', train), '--inference',
            _write(tmp_path, 'i.json', infer), '--out',
            str(out)
        ])
        md = (out / 'speed_targets.md').read_text()
        assert 'Warning' not in md and ('sparse conv' in md) == (backend is not None)


def test_notes_say_what_bounds_each_run_and_the_host_line(tmp_path):
    """Training rows note the forward's host time and the backward's GPU time, inference rows the middle encoder,
    attention rows the host time per call; ``--host`` records give one line above the table, in file order."""
    train = [_train('sdpa', 300.0, 900.0, 0), _train('auto', 180.0, 300.0, 0)]
    train[1]['phase_ms_median'] = dict(forward=dict(host=72.46, gpu=72.4), backward=dict(host=50.0, gpu=95.44))
    infer = [dict(_infer('fp16', 32.0, 'fp32', 0), part_ms_median=dict(pts_middle_encoder=18.66))]
    attn = [dict(_attn('triton', 'infer', 900, 1.1, 1.12), fwd_host_ms=0.0521)]
    host = dict(device='NVIDIA H200', cpu='Xeon', calls=2000, repeats=7, op_us=[4.0], op_us_median=4.25, op_us_min=4.0)
    paths = []
    for name, median in (('host_speed_start', 4.25), ('host_speed_end', 6.5)):
        paths.append(str(tmp_path / f'{name}.json'))
        (tmp_path / f'{name}.json').write_text(json.dumps(dict(host, op_us_median=median)))
    out = tmp_path / 'out'
    from tools.benchmarks.benchmark_model import add_speedups
    add_speedups(train)
    rows = st.main([
        '--train',
        _write(tmp_path, 't.json', train), '--inference',
        _write(tmp_path, 'i.json', infer), '--attention',
        _write(tmp_path, 'a.json', attn), '--host', *paths, '--out',
        str(out)
    ])
    notes = {r['target']: r['note'] for r in rows}
    assert notes['training step ms'] == 'forward host 72.5 ms, backward GPU 95.4 ms'
    assert notes['training speed-up vs sdpa'] == ''
    cpu_run = dict(phase_ms_median=dict(forward=dict(host=5.04, gpu=None), backward=dict(host=9.0, gpu=None)))
    assert st._phases_note(cpu_run) == 'forward host 5.0 ms' and st._phases_note({}) == ''
    assert notes['inference FPS (batch 1, fp16)'] == '31.25 ms/call, middle encoder 18.7 ms'
    assert notes['attention fwd vs bias-free'] == 'wall 1.12x, host 0.052 ms'
    md = (out / 'speed_targets.md').read_text().splitlines()
    assert md[2] == ('Host speed (`host_speed.py`, host time per small operator on NVIDIA H200, median of 7 x 2000): '
                     '4.25 us (host_speed_start), 6.50 us (host_speed_end); host Xeon.')
    with pytest.raises(SystemExit):
        st.main(['--train', _write(tmp_path, 't.json', train), '--host', str(tmp_path / 'none.json')])


def test_missing_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        st.main(['--train', str(tmp_path / 'nope.json')])
    err = capsys.readouterr().err
    assert 'no such benchmark file' in err and 'nope.json' in err


def test_speed_targets_script_smoke_run(tmp_path):
    """``SMOKE=1 bash tools/benchmarks/speed_targets.sh OUT`` (CPU, demo config): every benchmark runs in two
    rounds and the verdicts cover the training and inference runs (Triton's attention rows skip on CPU)."""
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / 'speed'
    proc = subprocess.run(
        ['bash', 'tools/benchmarks/speed_targets.sh', str(out)],
        cwd=root,
        env=dict(os.environ, SMOKE='1'),
        capture_output=True,
        text=True,
        timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((out / 'speed_targets.json').read_text())
    train = [r for r in rows if r['target'].startswith('training')]
    infer = [r for r in rows if r['target'].startswith('inference')]
    assert [r['run'].split(',')[0] for r in train] == ['round 1', 'round 1', 'round 2', 'round 2']  # no memory on CPU
    assert len(infer) == 4 and all(r['value'] > 0 for r in rows)
    assert (out / 'machine.txt').is_file() and (out / 'attention' / 'attention_benchmark.json').is_file()
    assert json.loads((out / 'host_speed_end.json').read_text())['op_us_median'] > 0
    assert 'Host speed (`host_speed.py`' in (out / 'speed_targets.md').read_text()
