"""The demo's end-of-run figures, from files written the way mmengine and GPUMemoryHook write them."""
import json

import numpy as np
import pytest
from torch import nn

from projects.mmdet3d_plugin.utils.demo_report import format_table, loss_ends, peak_memory, ran_attention_path


def test_loss_ends_average_the_first_and_last_records(tmp_path):
    rng = np.random.default_rng()
    losses = rng.uniform(1, 100, 37)
    path = tmp_path / 'scalars.json'
    with open(path, 'w') as f:
        for i, loss in enumerate(losses, 1):
            f.write(json.dumps(dict(loss=float(loss), iter=i, step=i, lr=1e-3)) + '\n')
            if i % 10 == 0:
                f.write(json.dumps({'NuScenes metric/mAP': 0.1, 'step': i}) + '\n')  # a val record
    got = loss_ends(str(path), window=10)
    assert got['start'] == pytest.approx(losses[:10].mean()) and got['end'] == pytest.approx(losses[-10:].mean())
    assert (got['first_iter'], got['last_iter'], got['records']) == (1, 37, 37)
    short = tmp_path / 'short.json'
    short.write_text('\n'.join(json.dumps(dict(loss=v, iter=i)) for i, v in enumerate([4.0, 2.0, 1.0], 1)))
    assert loss_ends(str(short))['start'] == 4.0 and loss_ends(str(short))['end'] == 1.0  # window shrinks to 1
    empty = tmp_path / 'empty.json'
    empty.write_text(json.dumps({'mAP': 1, 'step': 1}))
    with pytest.raises(ValueError, match='no training record'):
        loss_ends(str(empty))


def test_peak_memory_reads_the_hook_summary(tmp_path):
    gpu = tmp_path / 'gpu.json'
    gpu.write_text(
        json.dumps(
            dict(
                overall=dict(
                    train=dict(
                        mem_peak_alloc_mib=dict(mib=1449.5, iter=3, epoch=0), mem_peak_reserved_mib=dict(
                            mib=2000.0))))))
    assert peak_memory(str(gpu)) == ('peak allocated (GPU)', 1449.5)
    cpu = tmp_path / 'cpu.json'
    cpu.write_text(json.dumps(dict(overall=dict(train=dict(max_rss_mib=dict(mib=3210.0), rss_mib=dict(mib=1))))))
    assert peak_memory(str(cpu)) == ('peak RSS (CPU process)', 3210.0)
    assert peak_memory(str(cpu), phase='test')[1] is None


class _Attn(nn.Module):

    def __init__(self, mode, ran=None, use_bias=True):
        super().__init__()
        self.bias_mode, self.use_bias = mode, use_bias
        self.resolved_mode = ran  # GeometricBiasAttention's public record of the path its last forward ran


def test_ran_attention_path_names_what_ran():
    model = nn.Sequential(_Attn('auto', 'exact'), _Attn('auto', 'exact'), nn.Linear(2, 2))
    assert ran_attention_path(model) == 'auto -> exact'
    assert ran_attention_path(nn.Sequential(_Attn('sdpa', 'sdpa'), _Attn('triton'))) == 'sdpa, triton'
    assert ran_attention_path(nn.Sequential(_Attn('auto', use_bias=False))) == 'none (use_bias=False)'
    assert ran_attention_path(nn.Linear(2, 2)) == 'no bias-attention module'


def test_format_table_aligns_and_wraps():
    text = format_table([('a', 'short'), ('longer key', 'word ' * 40)], 'Title', width=60)
    lines = text.splitlines()
    assert lines[0] == 'Title' and lines[1] == '-----'
    assert lines[2].startswith('a           short')
    assert all(len(line) <= 60 for line in lines)
    assert all(line.startswith(' ' * 12) for line in lines[4:])
    assert ' '.join(' '.join(lines[3:]).split()) == 'longer key ' + ' '.join(['word'] * 40)
