"""tools/benchmarks/attention_timeline.py: the per-call timeline read from a profiler trace (a hand-made trace
with hand-computed launch offsets, GPU idle gaps and busy time)."""
import pytest

from tools.benchmarks.attention_timeline import call_timelines, short_name, summarize


def _trace(t0, t1):
    """Two annotated calls starting at t0 and t1 (us). Call 1: kernel A launched at +10 runs 30..130, kernel B
    launched at +200 runs 250..300 (idle 120 us before it), a kernel without a launch record runs 300..310; call
    2: one kernel launched at +5 running 20..70. A kernel before the first call and a CPU op belong to no call;
    the GPU copy of an annotation is not a call."""

    def launch(ts, corr, name='cuLaunchKernelEx'):
        return dict(ph='X', cat='cuda_runtime', name=name, ts=ts, dur=4, args=dict(correlation=corr))

    def kernel(ts, dur, corr, name):
        return dict(ph='X', cat='kernel', name=name, ts=ts, dur=dur, args=dict(correlation=corr))

    return [
        dict(ph='X', cat='user_annotation', name='timeline_call', ts=t1, dur=40),
        dict(ph='X', cat='user_annotation', name='timeline_call', ts=t0, dur=260),
        # the profiler's GPU copy of the annotation, spanning the call's kernels: not a call
        dict(ph='X', cat='gpu_user_annotation', name='timeline_call', ts=t0 + 30, dur=280),
        launch(t0 - 50, 1),
        kernel(t0 - 40, 20, 1, '_warm_kernel'),
        launch(t0 + 10, 2),
        kernel(t0 + 30, 100, 2, '_attn_fwd'),
        launch(t0 + 200, 3, 'cudaLaunchKernel'),
        kernel(t0 + 250, 50, 3, 'void pytorch_flash::flash_bwd_kernel<Traits, true>(Params)'),
        dict(ph='X', cat='cpu_op', name='aten::empty', ts=t0 + 100, dur=3),
        kernel(t0 + 300, 10, 99, 'reduce_kernel'),
        launch(t1 + 5, 4),
        kernel(t1 + 20, 50, 4, '_attn_bwd_dq'),
    ]


@pytest.mark.parametrize('t0', [1000.0, 7.5e9])
def test_call_timelines_by_hand(t0):
    t1 = t0 + 1000
    first, second = call_timelines(_trace(t0, t1))
    assert [k['name'] for k in first['kernels']] == ['_attn_fwd', 'flash_bwd_kernel', 'reduce_kernel']
    fwd, bwd, tail = first['kernels']
    assert (fwd['launch_us'], fwd['start_us'], fwd['end_us'], fwd['idle_us']) == (10, 30, 130, 30)
    assert (bwd['launch_us'], bwd['start_us'], bwd['end_us'], bwd['idle_us']) == (200, 250, 300, 120)
    assert (tail['launch_us'], tail['start_us'], tail['idle_us']) == (None, 300, 0)
    s = summarize(first)
    assert s == dict(span_us=310, gpu_busy_us=160, gpu_idle_us=150, first_launch_us=10, host_us=260, kernels=3)
    s2 = summarize(second)
    assert s2['span_us'] == 70 and s2['gpu_idle_us'] == 20 and s2['first_launch_us'] == 5
    assert s2['span_us'] == s2['gpu_busy_us'] + s2['gpu_idle_us']


def test_short_name():
    assert short_name('void at::native::(anonymous namespace)::reduce_kernel<512, 1>(float*)') == 'reduce_kernel'
    assert short_name('_attn_fwd') == '_attn_fwd'
