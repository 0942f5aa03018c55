"""The forward's key splits merged inside its one launch (``triton_kernels._attn_fwd``): the split that finishes
last in a query block merges the block's parts, counted in int32 counters that every launch leaves at zero.

A launch that left a counter non-zero would make the next forward sharing those counters skip its merge (its
output never written), so these tests run forwards back to back on one set of counters: under the Triton
interpreter on CPU (the counters handed in by a replaced ``_split_scratch``), and on the GPU on a stream's kept
buffers and inside a CUDA graph (which owns its counters).
"""
import random

import pytest
import torch

from projects.mmdet3d_plugin.attention.testing import make_kernel_inputs, reference_attention
from tests.attention.interpreted import run_interpreted

SCRIPT = r'''
import json, torch
import projects.mmdet3d_plugin.attention.paths.triton_kernels as ta
from projects.mmdet3d_plugin.attention.testing import make_kernel_inputs, reference_attention
kept = {}
def one_scratch(part_numel, lock_numel, device):  # one set of buffers for every call, as on a CUDA stream
    if not kept:
        kept['part'] = torch.empty(part_numel)
        kept['locks'] = torch.zeros(lock_numel, dtype=torch.int32)
    return kept['part'], kept['locks']
ta._split_scratch = one_scratch
res = []
for call in range(3):
    q, k, v, r, o, d, bs, g = make_kernel_inputs(1, 2, 40, 90, 16, torch.float32, 'per_batch', seed=SEED + call)
    leaves = [t.clone().requires_grad_(call == 2) for t in (q, r)]
    with ta.forced_kv_splits(3):
        out = ta.triton_bias_attention(leaves[0], k, v, leaves[1], o, d, bs)
        grads = torch.autograd.grad(out, leaves, g) if call == 2 else None
    ref = reference_attention(q, k, v, r, o, d, bs)
    row = dict(err=float((out.double() - ref).abs().max() / ref.abs().max()),
               locks_nonzero=int((kept['locks'] != 0).sum()), locks=kept['locks'].numel())
    if grads is not None:  # through the merged log-sum-exp the backward reads
        qd, rd = [t.double().requires_grad_(True) for t in (q, r)]
        ref_grads = torch.autograd.grad(reference_attention(qd, k, v, rd, o, d, bs), [qd, rd], g.double())
        row['grad_err'] = max(float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(grads, ref_grads))
    res.append(row)
print('RESULT' + json.dumps(res))
'''


def test_interpreted_split_merges_reset_their_counters():
    """Three split forwards (3 splits, the last with a backward) on one kept set of counters: each output (and the
    gradients through the merged log-sum-exp) matches fp64, and every counter is back at zero after each call."""
    pytest.importorskip('triton')
    seed = random.randrange(10**6)
    res = run_interpreted(SCRIPT.replace('SEED', str(seed)))
    for call, row in enumerate(res):
        assert row['err'] < 1e-4, (seed, call, row)
        assert row['locks'] >= 2 * 3 and row['locks_nonzero'] == 0, (seed, call, row)  # B*H = 2, 40 rows: 3 blocks
    assert res[2]['grad_err'] < 1e-4, (seed, res[2])


def _ta():
    pytest.importorskip('triton')
    import importlib
    return importlib.import_module('projects.mmdet3d_plugin.attention.paths.triton_kernels')


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_gpu_split_forwards_on_kept_counters_and_in_a_graph():
    """The inference shape of the decoder at batch 1 (split by the occupancy rule): eager forwards on the default
    stream and on a second stream (each stream's kept counters, reused call after call), and replays of a CUDA
    graph captured around the forward (its own counters), each with new inputs, give outputs equal bit for bit
    to one another and within bf16 error of fp64; the kept counters end at zero."""
    ta = _ta()
    B, H, Nq, Nk, D = 1, 8, 900, 22384, 32
    if ta.kv_splits(B, H, Nq, Nk, 'cuda')[0] < 2:
        pytest.skip('the occupancy rule does not split this shape on this GPU')
    seed = random.randrange(10**6)
    inputs = [
        make_kernel_inputs(B, H, Nq, Nk, D, torch.bfloat16, 'far', device='cuda', seed=seed + i) for i in range(3)
    ]
    o, d = inputs[0][4], inputs[0][5]  # one set of key lines, as in the decoder
    static = [t.clone() for t in inputs[0][:4]] + [inputs[0][6].clone()]

    def forward(q, k, v, r, bs):
        return ta.triton_bias_attention(q, k, v, r, o, d, bs)

    with torch.inference_mode():
        eager = [forward(*x[:4], x[6]).clone() for x in inputs for _ in range(2)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            on_side = [forward(*x[:4], x[6]).clone() for x in inputs]
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = forward(*static)
        replayed = []
        for x in inputs:
            for t, new in zip(static, (*x[:4], x[6])):
                t.copy_(new)
            graph.replay()
            replayed.append(static_out.clone())
    torch.cuda.synchronize()
    for i, x in enumerate(inputs):
        assert torch.equal(eager[2 * i], eager[2 * i + 1]), (seed, i)
        assert torch.equal(on_side[i], eager[2 * i]), (seed, i)
        assert torch.equal(replayed[i], eager[2 * i]), (seed, i)
        ref = reference_attention(*x[:4], o, d, x[6])
        err = float((eager[2 * i].double() - ref).abs().max() / ref.abs().max())
        assert err < 3e-2, (seed, i, err)
    for _, locks in ta._SPLIT_SCRATCH.values():
        assert not locks.any(), seed
