"""tools/analysis_tools/plot_memory.py: reads scalars.json of work dirs, draws a PNG."""
import json
import os
import os.path as osp
import struct

import pytest

from projects.mmdet3d_plugin.utils.scalar_logs import find_scalar_files, load_runs, series
from tools.analysis_tools.plot_memory import main

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def write_run(work_dir, timestamp, records):
    vis = osp.join(work_dir, timestamp, 'vis_data')
    os.makedirs(vis)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        for rec in records:
            f.write(json.dumps(rec) + '\n')


def fake_records(n, mem0, mem_step, rank_keys=False, seed=0):
    """Train records every 5 iters plus one val record (no 'iter')."""
    import random
    rnd = random.Random(seed)
    recs = []
    for i in range(1, n + 1):
        it = 5 * i
        rec = dict(lr=0.01, loss=2.0 / i + rnd.random() * 0.01, iter=it, step=it, time=0.1, data_time=0.01)
        if rank_keys:
            rec['max_rss_mib_rank0'] = mem0 + mem_step * i
            rec['max_rss_mib_rank1'] = mem0 + mem_step * i + 7
        else:
            rec['mem_peak_alloc_mib'] = mem0 + mem_step * i
        recs.append(rec)
    recs.append({'NuScenes metric/mAP': 0.5, 'step': 1})
    return recs


def png_size(path):
    with open(path, 'rb') as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC, 'not a PNG file'
    assert head[12:16] == b'IHDR'
    return struct.unpack('>II', head[16:24])


def test_two_runs_to_png(tmp_path, capsys):
    a, b = str(tmp_path / 'sdpa'), str(tmp_path / 'triton')
    write_run(a, '20260101_000000', fake_records(3, 9e9, 1))  # older: ignored
    write_run(a, '20260102_000000', fake_records(20, 1000, 10))
    write_run(b, '20260102_000000', fake_records(20, 300, 1, seed=1))
    out = str(tmp_path / 'mem.png')
    assert main([a, b, '--out', out, '--labels', 'sdpa', 'triton']) == 0
    width, height = png_size(out)
    assert width >= 400 and height >= 400
    assert osp.getsize(out) > 10_000  # lines and text, not an empty canvas
    assert 'mem_peak_alloc_mib, loss for 2 run(s)' in capsys.readouterr().out

    runs = load_runs([a, b], ['sdpa', 'triton'])
    assert [label for label, _ in runs] == ['sdpa', 'triton']
    xs, ys = series(runs[0][1], 'mem_peak_alloc_mib')['']
    assert xs == [5 * i for i in range(1, 21)]  # newest run, no val record
    assert ys[0] == 1010 and ys[-1] == 1200


def test_rank_keys_and_all_runs(tmp_path):
    a = str(tmp_path / 'dist')
    write_run(a, '20260101_000000', fake_records(4, 100, 1, rank_keys=True))
    write_run(a, '20260101_120000', fake_records(4, 200, 1, rank_keys=True))
    runs = load_runs([a], all_runs=True)
    assert [label for label, _ in runs] == ['dist 20260101_000000', 'dist 20260101_120000']
    per_rank = series(runs[1][1], 'max_rss_mib')
    assert sorted(per_rank) == ['_rank0', '_rank1']
    assert per_rank['_rank1'][1] == [208, 209, 210, 211]
    out = str(tmp_path / 'dist.png')
    main([a, '--all-runs', '--out', out, '--keys', 'max_rss_mib'])
    png_size(out)


def test_missing_work_dir_is_named(tmp_path):
    missing = str(tmp_path / 'no_such_run')
    with pytest.raises(FileNotFoundError, match='no_such_run'):
        main([missing, '--out', str(tmp_path / 'x.png')])
    empty = tmp_path / 'empty_work_dir'
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as e:
        find_scalar_files(str(empty))
    assert str(empty) in str(e.value)
    assert osp.join('*', 'vis_data', 'scalars.json') in str(e.value)


def test_bad_keys_and_labels(tmp_path):
    a = str(tmp_path / 'run')
    write_run(a, '20260102_000000', fake_records(3, 10, 1))
    out = str(tmp_path / 'x.png')
    with pytest.raises(ValueError, match=r"'nope'.*available keys"):
        main([a, '--out', out, '--keys', 'nope'])
    with pytest.raises(ValueError, match='one per work dir'):
        main([a, '--out', out, '--labels', 'x', 'y'])
    assert not osp.exists(out)
