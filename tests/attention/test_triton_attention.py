"""Triton geometric-bias attention vs the dense fp64 reference of attention/testing.py.

CPU: the kernels run under the Triton interpreter in a subprocess per test (TRITON_INTERPRET=1 must be
set before triton is imported, and must not leak into other tests), which runs that test's case and
prints the relative errors as JSON; separate subprocesses let `pytest -n N` spread the slow interpreter.
GPU (skipped on CPU): the CMT training shape, fp32, memory.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # run as a script (the interpreted-cases subprocess)
    sys.path.insert(0, ROOT)

from projects.mmdet3d_plugin.attention.testing import (GRAD_NAMES, install_interpreter_bounds_check,
                                                       kernel_relative_errors, make_kernel_inputs, peak_mib,
                                                       reference_attention, reference_by_head, reference_dist2)

KERNEL_MODULE = 'projects.mmdet3d_plugin.attention.paths.triton_kernels'

# name: (B, H, Nq, Nk, D, dtype, factor_precision, layout)
# layout: 'shared' = o, d expanded over batch (stride 0); 'per_batch'; 'strided' = per-batch lines
# and q/k/v as transposed views of (B, N, H, D); 'far' = coordinates up to +-5 (51 m / 10 m) and
# bias_scale up to 2, so the bias dominates the logits.
CPU_CASES = {
    'fp32_ragged_shared': (2, 2, 37, 53, 32, 'float32', 'auto', 'shared'),
    'bf16_ragged': (1, 2, 70, 130, 32, 'bfloat16', 'auto', 'per_batch'),
    'fp16_d64_strided': (1, 2, 37, 130, 64, 'float16', 'auto', 'strided'),
    'fp32_d64_nq1_nk1': (2, 2, 1, 1, 64, 'float32', 'auto', 'shared'),
    'bf16_nk1': (1, 2, 70, 1, 32, 'bfloat16', 'auto', 'per_batch'),
    'fp32_nq1': (1, 2, 1, 53, 32, 'float32', 'auto', 'per_batch'),
    'fp32_full_tiles_far': (1, 2, 32, 48, 32, 'float32', 'auto', 'far'),
    'fp32_bf16x3_factors_far': (1, 2, 37, 53, 32, 'float32', 'bf16x3', 'far'),
    'bf16_tf32x3_factors': (1, 2, 37, 53, 32, 'bfloat16', 'tf32x3', 'shared'),
}
# name: (case as in CPU_CASES, forced key splits) for the split-key forward (flash-decoding) and its merge;
# Nk not a multiple of the split size, so the last split ends in a ragged tile
KV_SPLIT_CASES = {
    'bf16_kv_splits3': ((1, 2, 37, 130, 32, 'bfloat16', 'auto', 'per_batch'), 3),
    'fp32_kv_splits2_far': ((2, 2, 20, 53, 32, 'float32', 'auto', 'far'), 2),
    'fp32_kv_splits_per_tile': ((1, 2, 9, 70, 32, 'float32', 'auto', 'shared'), 5),
}
# dtype: (B, H, Nq, Nk, D, factor_precision) run with each GPU autotune config forced (tiles of
# 32..128 with ragged edges: Nq, Nk not multiples of any block size)
GPU_TILE_CASES = {'float32': (1, 2, 70, 130, 32, 'auto'), 'bfloat16': (1, 2, 70, 130, 32, 'auto')}
# (rtol, atol): pass when max |x - ref| <= rtol * max |ref| + atol, per dtype / factor mode. atol
# covers gradients that are exactly 0 (Nk = 1). The interpreter's dots are exact fp32, so 16-bit
# errors come from rounding the inputs, P and dS to 16 bits, as on the GPU.
# bf16x3 factors carry ~2^-16 relative error per factor product (the interpreter truncates to
# bf16 where the GPU rounds), and d r / d bias_scale see dS rounded once to bf16.
TOL = {
    'float32': (2e-5, 1e-6),
    'float32/bf16x3': (1.5e-3, 1e-5),
    'float16': (6e-3, 1e-4),
    'bfloat16': (2e-2, 1e-3),
    'float32/bf16x3/geometry': (1e-2, 1e-4)
}


def tolerance(dtype, factor_precision, name):
    """(rtol, atol) for one output/gradient `name` of a CPU case."""
    if dtype == 'float32' and factor_precision == 'bf16x3':
        return TOL['float32/bf16x3/geometry' if name in ('r', 'bias_scale') else 'float32/bf16x3']
    return TOL[dtype]


def _kernels():
    """The kernel module (imports triton)."""
    import importlib
    return importlib.import_module(KERNEL_MODULE)


def _run_interpreted_cases(selected):
    """Subprocess entry (TRITON_INTERPRET=1 already set): print {case: errors} as JSON for the `selected` group
    (a CPU_CASES name, 'bias_off_baseline' or 'gpu_tiles/<dtype>'). Every load/store of every launch is
    bounds-checked (testing.install_interpreter_bounds_check)."""
    install_interpreter_bounds_check()
    ta = _kernels()
    results = {}
    for i, (name, (B, H, Nq, Nk, D, dtype, fprec, layout)) in enumerate(CPU_CASES.items()):
        if name != selected:
            continue
        inputs = make_kernel_inputs(B, H, Nq, Nk, D, getattr(torch, dtype), layout, seed=100 + i)

        def run(q, k, v, r, o, d, bs, fprec=fprec):
            return ta.triton_bias_attention(q, k, v, r, o, d, bs, factor_precision=fprec)

        results[name] = kernel_relative_errors(*inputs, run)
    for i, (name, (case, n_splits)) in enumerate(KV_SPLIT_CASES.items()):
        if name != selected:
            continue
        B, H, Nq, Nk, D, dtype, fprec, layout = case
        inputs = make_kernel_inputs(B, H, Nq, Nk, D, getattr(torch, dtype), layout, seed=200 + i)

        def run(q, k, v, r, o, d, bs, fprec=fprec, n_splits=n_splits):
            with ta.forced_kv_splits(n_splits):
                return ta.triton_bias_attention(q, k, v, r, o, d, bs, factor_precision=fprec)

        results[name] = kernel_relative_errors(*inputs, run)
        with ta.forced_kv_splits(n_splits):
            results[name + '/splits'] = ta.kv_splits(B, H, Nq, Nk, 'cpu')
    # the bias-free timing baseline of tools/benchmarks/tune_triton_attention.py must be plain attention
    if selected == 'bias_off_baseline':
        q, k, v, r, o, d, bs, grad_out = make_kernel_inputs(1, 2, 37, 53, 32, torch.float32, 'shared', seed=99)

        def no_bias(q, k, v, r, o, d, bs):
            keys = ta.key_factors(o, d, split=True)
            return ta._GeoBiasFlashAttention.apply(q, k, v, r, bs, keys, 32**-0.5, 'off')

        errs = kernel_relative_errors(q, k, v, r, o, d, torch.zeros_like(bs), grad_out, no_bias)
        results['bias_off_baseline'] = {n: errs[n] for n in ('out', 'q', 'k', 'v')}
    # every GPU autotune config of every kernel (the two others at their first config), ragged
    for dtype, (B, H, Nq, Nk, D, fprec) in GPU_TILE_CASES.items():
        if selected != f'gpu_tiles/{dtype}':
            continue
        inputs = make_kernel_inputs(B, H, Nq, Nk, D, getattr(torch, dtype), 'shared', seed=7)
        for kernel in ('fwd', 'dkdv', 'dq'):
            for i, cfg in enumerate(ta.kernel_configs(kernel)):
                forced = {n: cfg if n == kernel else ta.kernel_configs(n)[0] for n in ('fwd', 'dkdv', 'dq')}

                def run(q, k, v, r, o, d, bs, fprec=fprec, forced=forced):
                    with ta.forced_config('fwd', forced['fwd']), ta.forced_config('dkdv', forced['dkdv']), \
                            ta.forced_config('dq', forced['dq']):
                        return ta.triton_bias_attention(q, k, v, r, o, d, bs, factor_precision=fprec)

                results[f'gpu_tiles/{dtype}/{kernel}#{i}'] = kernel_relative_errors(*inputs, run)
    print('RESULTS_JSON ' + json.dumps(results))


def interpreted_errors(selected):
    """{case: errors} of one group of cases, run under the Triton interpreter in a fresh subprocess."""
    pytest.importorskip('triton')
    # the interpreter on CPU tensors, as in CI, also on a GPU machine (where the compiled kernels have the gpu tests)
    env = dict(os.environ, TRITON_INTERPRET='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([sys.executable, osp.abspath(__file__), '--interpreted-cases', selected],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULTS_JSON ')][-1]
    return json.loads(line[len('RESULTS_JSON '):])


@pytest.mark.parametrize('case', list(CPU_CASES))
def test_interpreted_kernel_matches_fp64_reference(case):
    dtype, fprec = CPU_CASES[case][5], CPU_CASES[case][6]
    errs = interpreted_errors(case)[case]
    assert set(errs) == {'out', *GRAD_NAMES}
    bad = {}
    for name, (err, ref) in errs.items():
        rtol, atol = tolerance(dtype, fprec, name)
        if not err <= rtol * ref + atol:
            bad[name] = (err, ref, rtol, atol)
    assert not bad, f'{case}: (err, max|ref|, rtol, atol) failing: {bad}; all: {errs}'


@pytest.mark.parametrize('case', list(KV_SPLIT_CASES))
def test_interpreted_key_splits_match_fp64_reference(case):
    """The forward split over keys (several programs per query block, merged by log-sum-exp) gives the
    output, and through the merged LSE the gradients, of the reference; the split really happened."""
    (B, H, Nq, Nk, D, dtype, fprec, _), n_splits = KV_SPLIT_CASES[case]
    res = interpreted_errors(case)
    n_ran, keys = res[case + '/splits']
    assert n_ran == n_splits and (n_ran - 1) * keys < Nk <= n_ran * keys and Nk % keys, (n_ran, keys, Nk)
    bad = {}
    for name, (err, ref) in res[case].items():
        rtol, atol = tolerance(dtype, fprec, name)
        if not err <= rtol * ref + atol:
            bad[name] = (err, ref, rtol, atol)
    assert not bad, f'{case}: (err, max|ref|, rtol, atol) failing: {bad}; all: {res[case]}'


def test_key_split_rule():
    """The occupancy rule of kv_splits: one split when the query blocks fill the SMs, else about two programs
    per SM with at least _MIN_KEYS_PER_SPLIT keys each; keys per split a multiple of the largest BLOCK_N."""
    ta = _ta()
    if os.environ.get('TRITON_INTERPRET', '0') == '1':
        pytest.skip('the rule is for compiled kernels')
    sms = 132
    ta._num_sms.cache_clear()
    orig = ta._num_sms
    try:
        ta._num_sms = lambda index: sms
        assert ta.kv_splits(2, 8, 1800, 22384, 'cuda') == (1, 22400)  # training shape: 240 programs
        n, keys = ta.kv_splits(1, 8, 900, 22384, 'cuda')  # inference: 64 programs -> ceil(264 / 64) = 5
        assert (n, keys) == (5, 4480) and keys % 128 == 0
        assert ta.kv_splits(1, 8, 900, 3000, 'cuda')[0] == 2  # capped by 3000 // 1024 keys per split
        assert ta.kv_splits(1, 8, 900, 500, 'cuda')[0] == 1
        with ta.forced_kv_splits(3):
            assert ta.kv_splits(2, 8, 1800, 22384, 'cuda') == (3, 7552)
        assert ta.kv_splits(1, 8, 900, 22384, 'cpu')[0] == 1
    finally:
        ta._num_sms = orig
    with pytest.raises(ValueError, match='n must be an int >= 1'):
        with ta.forced_kv_splits(0):
            pass


@pytest.mark.parametrize('dtype', list(GPU_TILE_CASES))
def test_every_gpu_config_matches_fp64_reference(dtype):
    """Each autotune config (block sizes of the GPU) on ragged sizes: in bounds and accurate."""
    runs = {
        name: errs
        for name, errs in interpreted_errors(f'gpu_tiles/{dtype}').items() if name.startswith(f'gpu_tiles/{dtype}/')
    }
    assert len(runs) >= 3 * 3, sorted(runs)  # every kernel has several configs
    fprec = GPU_TILE_CASES[dtype][-1]
    bad = {
        (run, name): (err, ref)
        for run, errs in runs.items()
        for name, (err, ref) in errs.items()
        if not err <= tolerance(dtype, fprec, name)[0] * ref + tolerance(dtype, fprec, name)[1]
    }
    assert not bad, f'(err, max|ref|) failing: {bad}'


def test_bias_off_baseline_is_plain_attention():
    errs = interpreted_errors('bias_off_baseline')['bias_off_baseline']
    rtol, atol = TOL['float32']
    assert all(err <= rtol * ref + atol for err, ref in errs.values()), errs


def test_bias_changes_the_output():
    """Guard against a reference in which the bias does nothing (the cases above would be vacuous)."""
    q, k, v, r, o, d, bs, _ = make_kernel_inputs(1, 2, 37, 53, 32, torch.float64, 'far')
    with_bias = reference_attention(q, k, v, r, o, d, bs, sm_scale=32**-0.5)
    without = reference_attention(q, k, v, r, o, d, 0 * bs, sm_scale=32**-0.5)
    assert (with_bias - without).abs().max() > 0.1


# ----------------------------------------------------------------------------------------------
# Input checks (no kernel launch)
# ----------------------------------------------------------------------------------------------
def _ta():
    pytest.importorskip('triton')
    return _kernels()


def _good():
    q, k, v, r, o, d, bs, _ = make_kernel_inputs(1, 2, 5, 7, 32, torch.float32, 'shared')
    return dict(q=q, k=k, v=v, r=r, o=o, d=d, bias_scale=bs)


@pytest.mark.parametrize('field,value,match', [
    ('qkv', torch.zeros(1, 2, 5, 48), 'head dim D=48'),
    ('k', torch.zeros(1, 2, 7, 16), r'k and v must be \(B=1, H=2, Nk, D=32\)'),
    ('v', torch.zeros(1, 2, 7, 32, dtype=torch.float16), 'share one dtype'),
    ('r', torch.zeros(1, 5, 2), r'r must be \(B=1, Nq=5, 3\)'),
    ('o', torch.zeros(1, 6, 3), r'o must be \(B=1, Nk=7, 3\)'),
    ('d', torch.zeros(1, 7, 3, dtype=torch.float64), 'd must be float32'),
    ('bias_scale', torch.zeros(3), r'bias_scale must be \(H=2,\)'),
    ('o', torch.zeros(1, 7, 3, requires_grad=True), 'no gradient is computed for key line `o`'),
])
def test_bad_input_names_the_field(field, value, match):
    ta = _ta()
    args = _good()
    for name in (('q', 'k', 'v') if field == 'qkv' else (field, )):
        args[name] = value
    with pytest.raises(ValueError, match=match):
        ta.triton_bias_attention(**args)


def test_int32_guard_measures_strided_views():
    """``check_kernel_limits`` refuses q/k/v whose element offsets reach 2**31 (the kernels' int32 offsets): the
    extent it computes equals the largest offset of any element + 1, enumerated by brute force on random strided
    views; a view of a normal shape with one huge stride (a meta tensor: no memory) is refused, its contiguous
    copy is not."""
    ta = _ta()
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())))
    for _ in range(20):
        shape = [int(n) for n in torch.randint(1, 5, (4, ), generator=gen)]
        base = torch.zeros(4000)
        strides = [int(s) for s in torch.randint(0, 40, (4, ), generator=gen)]
        offset = int(torch.randint(0, 50, (), generator=gen))
        view = base.as_strided(shape, strides, offset)
        idx = torch.cartesian_prod(*(torch.arange(n) for n in shape)).reshape(-1, 4)
        brute = int((idx * torch.tensor(strides)).sum(1).max()) + offset + 1
        assert ta._extent(view) == brute, (shape, strides, offset)
    q = torch.empty((1, 2, 5, 32), device='meta')
    k = torch.empty((1, 2, 7, 32), device='meta')
    ta.check_kernel_limits(q, k, k)
    wide = q.as_strided((1, 2, 5, 32), (2**32, 2**31, 32, 1))  # head 1 starts 2**31 elements in
    with pytest.raises(ValueError, match='int32 offsets'):
        ta.check_kernel_limits(wide, k, k)
    ta.check_kernel_limits(wide.contiguous(), k, k)


def test_host_cdiv_is_the_ceiling():
    ta = _ta()
    a = torch.randint(0, 10**6, (100, ))
    b = torch.randint(1, 300, (100, ))
    for x, y in zip(a.tolist(), b.tolist()):
        assert ta._cdiv(x, y) == (x + y - 1) // y


def test_bad_factor_precision_lists_choices():
    ta = _ta()
    with pytest.raises(ValueError, match="one of \\('auto', 'bf16x3', 'tf32x3'\\)"):
        ta.triton_bias_attention(**_good(), factor_precision='fp64')


def test_availability_on_cpu_follows_interpreter_flag():
    from projects.mmdet3d_plugin.attention import triton_is_available
    ta = _ta()
    interpreting = os.environ.get('TRITON_INTERPRET', '0') == '1'
    assert triton_is_available('cpu') is interpreting
    if not interpreting:
        with pytest.raises(RuntimeError, match='TRITON_INTERPRET=1'):
            ta.triton_bias_attention(**_good())


# ----------------------------------------------------------------------------------------------
# GPU
# ----------------------------------------------------------------------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize('dtype,D', [(torch.float32, 32), (torch.bfloat16, 64), (torch.float16, 32)])
def test_gpu_small_vs_fp64(dtype, D):
    ta = _ta()
    inputs = make_kernel_inputs(2, 4, 300, 1001, D, dtype, 'shared', device='cuda', seed=7)
    errs = kernel_relative_errors(*inputs, ta.triton_bias_attention)
    rtol, atol = {torch.float32: (1e-4, 1e-5), torch.float16: (1e-2, 1e-4), torch.bfloat16: (3e-2, 1e-3)}[dtype]
    bad = {k: v for k, (v, ref) in errs.items() if not v <= rtol * ref + atol}
    assert not bad, errs


def relative_max_errors(out, grads, ref_out, ref_grads):
    """{name: max |x - ref| / max |ref|} for the output and the five gradients."""
    pairs = [('out', out, ref_out)] + list(zip(GRAD_NAMES, grads, ref_grads))
    return {n: ((x.float() - y).abs().max() / y.abs().max()).item() for n, x, y in pairs}


@pytest.mark.gpu
@gpu
def test_gpu_cmt_training_shape_bf16_accuracy_and_memory():
    """B=2, H=8, Nq=1800, Nk=22384, D=32 bf16: errors vs fp32 dense, peak memory vs bias-free SDPA."""
    ta = _ta()
    B, H, Nq, Nk, D = 2, 8, 1800, 22384, 32
    q, k, v, r, o, d, bs, grad_out = make_kernel_inputs(B, H, Nq, Nk, D, torch.bfloat16, 'far', device='cuda', seed=3)
    ref_out, ref_grads = reference_by_head(q, k, v, r, o, d, bs, grad_out, dtype=torch.float32)
    ref_grads = [ref_grads[n] for n in GRAD_NAMES]

    def errors(run):
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v, r, bs)]
        out = run(*leaves[:4], o, d, leaves[4])
        grads = torch.autograd.grad(out, leaves, grad_out.bfloat16())
        return relative_max_errors(out.detach(), grads, ref_out, ref_grads)

    ours = errors(ta.triton_bias_attention)

    def mask(q_, k_, v_, r_, o_, d_, bs_):
        bias = -bs_.view(1, -1, 1, 1) * reference_dist2(r_, o_, d_, dtype=torch.float32)[:, None]
        return F.scaled_dot_product_attention(q_, k_, v_, attn_mask=bias.to(q_.dtype))

    dense = errors(mask)
    # no worse than the dense-mask path (bias rounded to bf16), within the bf16 noise floor
    bad = {n: (e, dense[n]) for n, e in ours.items() if not e <= max(1.5 * dense[n], 1e-2)}
    assert not bad, f'triton vs dense-mask errors: {bad}; all: {ours} vs {dense}'

    fresh = lambda: [t.detach().clone().requires_grad_(True) for t in (q, k, v)]  # noqa: E731
    qkv, bs_leaf = fresh(), bs.clone().requires_grad_(True)
    ours_mem = peak_mib(lambda: ta.triton_bias_attention(*qkv, r, o, d, bs_leaf).backward(grad_out.bfloat16()), 'cuda')
    qkv = fresh()
    sdpa_mem = peak_mib(lambda: F.scaled_dot_product_attention(*qkv).backward(grad_out.bfloat16()), 'cuda')
    assert ours_mem <= 1.2 * sdpa_mem + 8, (ours_mem, sdpa_mem)  # MiB


@pytest.mark.gpu
@gpu
def test_gpu_inference_shape_key_splits_match_one_pass():
    """Batch-1 inference shape (B=1, H=8, Nq=900, Nk=22384, bf16): the occupancy rule splits the keys, and the
    split forward (and the backward through its merged LSE) is as accurate against fp32 dense as one pass."""
    ta = _ta()
    B, H, Nq, Nk, D = 1, 8, 900, 22384, 32
    if torch.cuda.get_device_properties(0).multi_processor_count <= B * H * 8:
        pytest.skip('this GPU has too few SMs for the rule to split this shape')
    n_splits, _ = ta.kv_splits(B, H, Nq, Nk, 'cuda')
    assert n_splits > 1
    q, k, v, r, o, d, bs, grad_out = make_kernel_inputs(B, H, Nq, Nk, D, torch.bfloat16, 'far', device='cuda', seed=5)
    ref_out, ref_grads = reference_by_head(q, k, v, r, o, d, bs, grad_out, dtype=torch.float32)
    ref_grads = [ref_grads[n] for n in GRAD_NAMES]

    def errors(n):
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v, r, bs)]
        with ta.forced_kv_splits(n):
            out = ta.triton_bias_attention(*leaves[:4], o, d, leaves[4])
        grads = torch.autograd.grad(out, leaves, grad_out.bfloat16())
        return relative_max_errors(out.detach(), grads, ref_out, ref_grads)

    split, single = errors(n_splits), errors(1)
    bad = {n: (e, single[n]) for n, e in split.items() if not e <= max(1.5 * single[n], 1e-2)}
    assert not bad, f'split vs one-pass errors: {bad}; all: {split} vs {single}'


@pytest.mark.gpu
@gpu
def test_gpu_backward_side_stream_joins_the_callers_stream():
    """The dq and dk/dv kernels run on two streams. On a caller's own (non-default) stream, copies of the gradients
    queued right after the backward returns, with no synchronisation, must equal the gradients read after a device
    synchronisation (a missing join would copy dk/dv before their kernel ends), and equal those of a run on the
    default stream and of a serial backward (the same deterministic kernels)."""
    ta = _ta()
    q, k, v, r, o, d, bs, grad_out = make_kernel_inputs(
        2, 8, 1800, 22384, 32, torch.bfloat16, 'far', device='cuda', seed=11)

    def grads():
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v, r, bs)]
        out = ta.triton_bias_attention(*leaves[:4], o, d, leaves[4])
        return torch.autograd.grad(out, leaves, grad_out.bfloat16())

    on_default = [g.clone() for g in grads()]
    with ta.serial_backward():
        serial = grads()
    torch.cuda.synchronize()
    for name, g, ref in zip(GRAD_NAMES, serial, on_default):
        assert torch.equal(g, ref), f'grad {name}: the serial backward differs from the two-stream one'

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        ours = grads()
        copies = [g.clone() for g in ours]
    torch.cuda.synchronize()
    for name, c, g, ref in zip(GRAD_NAMES, copies, ours, on_default):
        assert torch.equal(c, g), f'grad {name}: copied before its kernel ended'
        assert torch.equal(g, ref), f'grad {name}: differs from the default-stream run'


if __name__ == '__main__' and '--interpreted-cases' in sys.argv:
    _run_interpreted_cases(sys.argv[sys.argv.index('--interpreted-cases') + 1])
