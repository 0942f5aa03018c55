"""tools/benchmarks/count_loss_ops.py on CPU: counts the losses' operators at the seed config's head, writes them
and the loss terms, and the counts follow the work (more layers, more operators)."""
import json
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'benchmarks'))


def test_counts_and_writes(tmp_path, monkeypatch):
    import count_loss_ops
    monkeypatch.chdir(ROOT)
    runs = {
        layers:
        count_loss_ops.main([
            '--batch', '1', '--layers',
            str(layers), '--num-gt', '5', '--out',
            str(tmp_path / str(layers)), '--save-losses',
            str(tmp_path / f'losses{layers}.pt')
        ])
        for layers in (1, 2)
    }
    written = json.loads((tmp_path / '2' / 'loss_op_count.json').read_text())
    assert written['loss_by_feat_ops'] == runs[2]['loss_by_feat_ops'] == sum(written['loss_by_feat_by_op'].values())
    assert 0 < runs[2]['hungarian_matches_ops'] < runs[2]['loss_by_feat_ops']
    assert runs[1]['loss_by_feat_ops'] < runs[2]['loss_by_feat_ops']  # a second layer's losses
    losses = torch.load(tmp_path / 'losses2.pt')
    assert set(losses) == {
        'd0.loss_cls', 'd0.loss_bbox', 'd0.dn_loss_cls', 'd0.dn_loss_bbox', 'loss_cls', 'loss_bbox', 'dn_loss_cls',
        'dn_loss_bbox'
    }
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
