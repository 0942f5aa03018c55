"""``tools/benchmarks/host_speed.py``: the host time per small operator, against operators of known host cost."""
import json
import time

import pytest

from tools.benchmarks import host_speed


def test_small_op_us_reads_the_host_time_of_each_call():
    """An operator that holds the host for 2 ms reads as >= 2000 us per call; the default add on CPU (tens of
    microseconds at most on any host) reads far below it."""
    slow = host_speed.small_op_us('cpu', calls=5, repeats=2, op=lambda t: time.sleep(0.002))
    assert len(slow) == 2 and min(slow) >= 2000.0
    fast = host_speed.small_op_us('cpu', calls=300, repeats=3)
    assert len(fast) == 3 and 0.0 < max(fast) < 500.0


def test_cli_writes_the_record(tmp_path, capsys):
    out = tmp_path / 'sub' / 'host.json'
    rec = host_speed.main(['--device', 'cpu', '--calls', '50', '--repeats', '3', '--out', str(out)])
    assert json.loads(out.read_text()) == rec
    assert rec['device'] == 'cpu' and rec['calls'] == 50 and rec['repeats'] == 3 and len(rec['op_us']) == 3
    assert rec['op_us_min'] == min(rec['op_us']) and rec['op_us_median'] == sorted(rec['op_us'])[1]
    assert 'us per small operator on cpu' in capsys.readouterr().out


def test_cli_refuses_no_calls(capsys):
    with pytest.raises(SystemExit):
        host_speed.main(['--device', 'cpu', '--calls', '0'])
    assert '--calls and --repeats must be >= 1; got 0' in capsys.readouterr().err
