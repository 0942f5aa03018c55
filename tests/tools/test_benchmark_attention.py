"""Smoke test of tools/benchmarks/benchmark_attention.py on CPU with --quick shapes."""
import json
import os.path as osp

from tools.benchmarks.benchmark_attention import main


def test_benchmark_quick_cpu(tmp_path):
    # --device cpu: on a GPU machine the tool would pick CUDA, where triton and flex rows run (not skipped)
    main([
        '--quick', '--device', 'cpu', '--out',
        str(tmp_path), '--phases', 'train', '--rows', 'sdpa', 'svd', 'exact', 'triton', 'auto', 'nobias', 'flex'
    ])
    stem = osp.join(str(tmp_path), 'attention_benchmark')
    with open(stem + '.json') as f:
        results = json.load(f)['results']
    rows = {r['row']: r for r in results}
    assert set(rows) == {'sdpa', 'svd', 'exact', 'triton', 'auto', 'nobias', 'flex'}
    for name in ('sdpa', 'svd', 'exact', 'auto'):
        row = rows[name]
        assert 'skipped' not in row, row
        assert row['fwd_ms'] > 0 and row['fwd_bwd_ms'] > 0
        assert row['fwd_bwd_x'] > 0
        # Every bias path computes the same function as the fp64 reference.
        assert row['out_err'] < 1e-2 and row['grad_q_err'] < 2e-2
        assert row['grad_r_err'] < 0.1
    assert rows['nobias']['fwd_bwd_x'] == 1.0
    assert rows['nobias'].get('out_err') is None
    assert 'skipped' in rows['flex'] and 'skipped' in rows['triton']
    with open(stem + '.md') as f:
        table = f.read()
    assert '| exact |' in table and 'Nk=94' in table
    assert osp.getsize(stem + '.png') > 1000
