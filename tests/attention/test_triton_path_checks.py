"""The 'triton' path's input checks: in full on the first call with an input signature (shapes, dtypes, devices, and
the strides and storage offsets of q, k, v, which the int32 offsets depend on), then none but the mask and dropout.

The inputs are meta tensors (shapes, no memory) and the kernel entry points are stand-ins, so these tests run the
path's Python on CPU without a GPU or the interpreter.
"""
import pytest
import torch

B, H, NQ, NK, D = 2, 4, 9, 13, 32


def _inputs(**changes):
    meta = dict(device='meta')
    x = dict(
        q=torch.empty(B, H, NQ, D, dtype=torch.bfloat16, **meta),
        k=torch.empty(B, H, NK, D, dtype=torch.bfloat16, **meta),
        v=torch.empty(B, H, NK, D, dtype=torch.bfloat16, **meta),
        r=torch.empty(B, NQ, 3, **meta),
        o=torch.empty(NK, 3, **meta),
        d=torch.empty(NK, 3, **meta),
        bias_scale=torch.empty(H, **meta))
    x.update(changes)
    return x


@pytest.fixture
def path(monkeypatch):
    """(triton path module, kernel module, calls): full checks counted in calls['full'], the key lines handed to
    key_factors in calls['lines'], the attention call replaced by a stand-in returning 'out'."""
    pytest.importorskip('triton')
    from projects.mmdet3d_plugin.attention.paths import triton as tp
    mod = tp.load_triton_module(required=True)
    calls = dict(full=0, lines=[])
    real_geometry = tp.check_geometry

    def counted_geometry(*args):
        calls['full'] += 1
        return real_geometry(*args)

    def key_lines(o, d, *args, **kwargs):
        calls['lines'].append((o, d))

    monkeypatch.setattr(tp, '_CHECKED_SIGNATURES', set())
    monkeypatch.setattr(tp, 'check_geometry', counted_geometry)
    monkeypatch.setattr(tp, '_ready_kernel_module', lambda device: mod)
    monkeypatch.setattr(mod, 'key_factors', key_lines)
    monkeypatch.setattr(mod, 'attention_with_keys', lambda *args: 'out')
    return tp, mod, calls


def test_full_checks_once_per_signature(path):
    tp, _, calls = path
    inputs = _inputs()
    for _ in range(3):
        assert tp.triton_path_attention(**inputs) == 'out'
    assert calls['full'] == 1
    assert all(o is inputs['o'] and d is inputs['d'] for o, d in calls['lines'])  # the caller's lines, as given
    tp.triton_path_attention(**_inputs(o=torch.empty(B, NK, 3, device='meta'), d=torch.empty(B, NK, 3, device='meta')))
    tp.triton_path_attention(**_inputs(
        q=torch.empty(B, H, NQ + 1, D, dtype=torch.bfloat16, device='meta'), r=torch.empty(B, NQ +
                                                                                           1, 3, device='meta')))
    tp.triton_path_attention(**_inputs(r=torch.empty(B, NQ, 3, dtype=torch.float64, device='meta')))
    q = torch.empty(B, NQ, H, D, dtype=torch.bfloat16, device='meta').transpose(1, 2)  # (B, H, Nq, D) of other strides
    tp.triton_path_attention(**_inputs(q=q))
    tp.triton_path_attention(**_inputs(
        q=torch.empty(2 * q.numel(), dtype=q.dtype, device='meta')[1:q.numel() + 1].view(q.shape)))
    assert calls['full'] == 6  # another line batch, query count, r dtype, q strides, q storage offset


@pytest.mark.parametrize(
    'field, value, match',
    [('r', torch.empty(B, NQ + 1, 3, device='meta'), r'r \(ref points\) must have shape'),
     ('bias_scale', torch.empty(H + 1, device='meta'), r'bias_scale must have shape'),
     ('o', torch.empty(NK, 3, dtype=torch.int64, device='meta'), 'o must be a floating tensor'),
     ('v', torch.empty(B, H, NK + 1, D, dtype=torch.bfloat16, device='meta'), r'expected q \(B, H, Nq, D\)'),
     ('q', torch.empty(B, H, NQ, 48, dtype=torch.bfloat16, device='meta'), 'head dim D=48 unsupported'),
     ('r', None, 'the geometric bias needs r')])
def test_bad_input_after_a_good_call_names_the_field(path, field, value, match):
    """A signature differing from a checked one in one field is checked in full: the error names the field."""
    tp, _, _ = path
    tp.triton_path_attention(**_inputs())
    bad = _inputs(**{field: value})
    if field == 'q':
        bad.update(k=bad['k'][..., :1].expand(B, H, NK, 48), v=bad['v'][..., :1].expand(B, H, NK, 48))
    with pytest.raises((ValueError, TypeError), match=match):
        tp.triton_path_attention(**bad)


def test_known_shapes_still_check_offsets_and_mask(path):
    """Same shapes, dtypes and devices as a checked call: a view whose offsets reach 2**31 (other strides: a new
    signature) is refused, and so are an attention mask and dropout with a known signature."""
    tp, _, calls = path
    tp.triton_path_attention(**_inputs())
    q = torch.empty(B, H, NQ, D, dtype=torch.bfloat16, device='meta')
    wide = q.as_strided(q.shape, (2**31, 2**30, D, 1))
    with pytest.raises(ValueError, match='int32 offsets'):
        tp.triton_path_attention(**_inputs(q=wide))
    with pytest.raises(ValueError, match='supports neither attn_mask'):
        tp.triton_path_attention(**_inputs(), attn_mask=torch.zeros(B, H, NQ, NK, dtype=torch.bool, device='meta'))
    with pytest.raises(ValueError, match='supports neither attn_mask'):
        tp.triton_path_attention(**_inputs(), dropout_p=0.1)
    assert calls['full'] == 2  # the first call and the wide view


def test_signature_set_is_bounded(path, monkeypatch):
    tp, _, calls = path
    monkeypatch.setattr(tp, '_MAX_CHECKED_SIGNATURES', 2)
    for nq in (3, 4, 5, 3):
        tp.triton_path_attention(**_inputs(
            q=torch.empty(B, H, nq, D, dtype=torch.bfloat16, device='meta'), r=torch.empty(B, nq, 3, device='meta')))
    assert len(tp._CHECKED_SIGNATURES) <= 2
    assert calls['full'] == 4  # the set started over at the third signature, so nq=3 was checked again
