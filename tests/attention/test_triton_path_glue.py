"""The 'triton' path's glue (coordinate normalisation, broadcast lines,
argument order) vs the fp64 reference, through the Triton interpreter.

TRITON_INTERPRET=1 must be set before triton is imported, so the cases run
in one subprocess that prints their errors as JSON.
"""
import pytest

from tests.attention.interpreted import run_interpreted

SCRIPT = r'''
import json, torch
from tests.attention.test_paths import make_inputs, _errors
from projects.mmdet3d_plugin.attention import GeometricBiasAttention
res = {}
for name, dtype, shared in (('fp32_shared', torch.float32, True),
                            ('bf16_per_batch', torch.bfloat16, False)):
    inp = make_inputs(5, 20, dtype, 'far_offset', 3, b=2, h=2,
                      shared_lines=shared)
    errs, zero, _ = _errors('triton', inp, 3)
    res[name] = dict(errs=errs, zero=zero)
m = GeometricBiasAttention(64, 2, bias_mode='triton')
x, kv = torch.randn(2, 5, 64), torch.randn(2, 20, 64)
inp = make_inputs(5, 20, torch.float32, 'near', 4, b=2, h=2)
out_t = m(x, kv, kv, ref_points=inp['r'], key_lines=(inp['o'], inp['d']))
res['resolved_triton'] = m.resolved_mode
m.bias_mode = 'exact'
out_e = m(x, kv, kv, ref_points=inp['r'], key_lines=(inp['o'], inp['d']))
res['module_rel'] = float((out_t - out_e).norm() / out_e.norm())
res['resolved'] = m.resolved_mode
print('RESULT' + json.dumps(res))
'''


def test_triton_path_under_interpreter():
    pytest.importorskip('triton')
    res = run_interpreted(SCRIPT)
    tol = {'fp32_shared': 1e-4, 'bf16_per_batch': 2e-2}
    for name, bound in tol.items():
        errs = res[name]['errs']
        assert all(e < bound for e in errs.values()), (name, errs)
    assert res['module_rel'] < 1e-4
    assert (res['resolved_triton'], res['resolved']) == ('triton', 'exact')
