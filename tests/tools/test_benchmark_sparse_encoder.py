"""tools/benchmarks/benchmark_sparse_encoder.py on the GPU: a short run writes both encoders' rows per phase, the
speed-ups computed from them and the two encoders' output agreement."""
import json
import os.path as osp
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'benchmarks'))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_short_run_writes_both_encoders(tmp_path):
    import benchmark_sparse_encoder
    benchmark_sparse_encoder.main(
        ['--points', '20000', '--iters', '2', '--warmup', '1', '--rounds', '2', '--out',
         str(tmp_path)])
    result = json.loads((tmp_path / 'sparse_encoder_benchmark.json').read_text())
    runs = result['runs']
    assert len(runs) == 2 * 2 * 2  # rounds x phases x encoders
    for phase in ('infer', 'train'):
        rows = {r['encoder']: r for r in runs if r['phase'] == phase and r['round'] == 0}
        assert set(rows) == {'SparseEncoder', 'SparseEncoderSharedIndices'}
        speedup = result['summary'][phase]['speedup']
        med = result['summary'][phase]['median']
        assert speedup['wall_ms'] == pytest.approx(med['SparseEncoder']['wall_ms'] /
                                                   med['SparseEncoderSharedIndices']['wall_ms'])
        assert result['agreement'][phase] < 1e-2  # TF32 by default
    assert '| infer |' in (tmp_path / 'sparse_encoder_benchmark.md').read_text()
