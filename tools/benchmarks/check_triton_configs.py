"""Run forward+backward of the fused Triton bias attention with EVERY autotune config of every
kernel, one config at a time, and print one line per (kernel, config, case): ok / wrong / error.

    python tools/benchmarks/check_triton_configs.py                 # GPU: < 2 min on an H100
    python tools/benchmarks/check_triton_configs.py --interpret --kernels dq --cases fp32_d32_300x1001

GPU: one subprocess per (kernel, config) with CUDA_LAUNCH_BLOCKING=1 (all in parallel); the
kernel under test uses the forced config, the two others their first listed config. A CUDA error
poisons a process, so the cases after a failing one are re-run in a fresh subprocess.
--interpret: the same on CPU under TRITON_INTERPRET=1, with every load/store address checked to
lie inside one of the launch's tensor arguments (raises on out-of-bounds access).
Each case is checked against the dense fp64 reference of projects/mmdet3d_plugin/attention/testing.py
('wrong' when max |err| > RTOL * max |ref| for the output or any gradient).
"""
import argparse
import concurrent.futures
import importlib
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
KERNEL_MODULE = 'projects.mmdet3d_plugin.attention.paths.triton_kernels'
KERNELS = ('fwd', 'dkdv', 'dq')
# name: (B, H, Nq, Nk, D, dtype, factor_precision); ragged Nq / Nk, key lines shared by the batch
CASES = {
    'fp32_d32_300x1001': (2, 4, 300, 1001, 32, 'float32', 'auto'),
    'fp32_d32_128x1024': (2, 4, 128, 1024, 32, 'float32', 'auto'),
    'fp32_d64_300x1001': (2, 4, 300, 1001, 64, 'float32', 'auto'),
    'fp32_bf16x3_d32': (2, 4, 300, 1001, 32, 'float32', 'bf16x3'),
    'bf16_d32_300x1001': (2, 4, 300, 1001, 32, 'bfloat16', 'auto'),
    'bf16_d64_300x1001': (2, 4, 300, 1001, 64, 'bfloat16', 'auto'),
    'bf16_tf32x3_d32': (2, 4, 300, 1001, 32, 'bfloat16', 'tf32x3'),
    'fp16_d32_128x1024': (2, 4, 128, 1024, 32, 'float16', 'auto'),
    'fp16_d64_300x1001': (2, 4, 300, 1001, 64, 'float16', 'auto'),
}
RTOL = {'float32': 1e-3, 'float16': 2e-2, 'bfloat16': 5e-2}  # loose: flags broken configs only


def _child(kernel, index, case_names, interpret):
    """Subprocess: run `case_names` with config `index` of `kernel`; one JSON line per case."""
    import torch

    from projects.mmdet3d_plugin.attention import testing
    if interpret:
        testing.install_interpreter_bounds_check()
    ta = importlib.import_module(KERNEL_MODULE)
    device = 'cpu' if interpret else 'cuda'
    forced = {name: ta.kernel_configs(name)[index if name == kernel else 0] for name in KERNELS}
    for case in case_names:
        B, H, Nq, Nk, D, dtype, fprec = CASES[case]
        t0 = time.time()
        try:
            inputs = testing.make_kernel_inputs(B, H, Nq, Nk, D, getattr(torch, dtype), 'shared', device=device, seed=5)

            def run(q, k, v, r, o, d, bs, fprec=fprec):
                with ta.forced_config('fwd', forced['fwd']), ta.forced_config('dkdv', forced['dkdv']), \
                        ta.forced_config('dq', forced['dq']):
                    return ta.triton_bias_attention(q, k, v, r, o, d, bs, factor_precision=fprec)

            errs = testing.kernel_relative_errors(*inputs, run)
            if not interpret:
                torch.cuda.synchronize()
            rel = {n: e / max(m, 1e-30) for n, (e, m) in errs.items()}
            status = 'ok' if all(x <= RTOL[dtype] for x in rel.values()) else 'wrong'
            line = dict(case=case, status=status, max_rel=max(rel.values()), rel=rel)
        except Exception as exc:  # noqa: BLE001 -- reported, and the process ends (CUDA context)
            line = dict(case=case, status='error', error=f'{type(exc).__name__}: {exc}'[:300])
        line['seconds'] = round(time.time() - t0, 1)
        print('CASE_JSON ' + json.dumps(line), flush=True)
        if line['status'] == 'error':
            return


def _run_config(kernel, index, case_names, interpret, timeout):
    """Parent: run one (kernel, config) over the cases, restarting after an error. -> [lines]."""
    env = dict(os.environ, CUDA_LAUNCH_BLOCKING='1')
    if interpret:
        env['TRITON_INTERPRET'] = '1'
    lines, todo = [], list(case_names)
    while todo:
        cmd = [sys.executable, osp.abspath(__file__), '--child', kernel, str(index), '--cases', *todo]
        if interpret:
            cmd.append('--interpret')
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
            got = [json.loads(ln[len('CASE_JSON '):]) for ln in proc.stdout.splitlines() if ln.startswith('CASE_JSON ')]
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ['']
        except subprocess.TimeoutExpired:
            got, tail = [], [f'timeout after {timeout} s']
        if not got:  # crashed or hung before reporting: blame the first pending case
            got = [dict(case=todo[0], status='error', error=f'no report; last output: {tail[0][:300]}')]
        lines.extend(got)
        todo = todo[len(got):]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kernels', nargs='+', choices=KERNELS, default=list(KERNELS))
    parser.add_argument('--cases', nargs='+', choices=list(CASES), default=list(CASES))
    parser.add_argument('--interpret', action='store_true', help='CPU, TRITON_INTERPRET=1, bounds-checked')
    parser.add_argument(
        '--jobs',
        type=int,
        default=None,
        help='parallel subprocesses (default: one per config on GPU, capped at the CPU count; 1 CPU)')
    parser.add_argument('--timeout', type=float, default=600.0, help='seconds per subprocess')
    parser.add_argument('--child', nargs=2, metavar=('KERNEL', 'INDEX'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child[0], int(args.child[1]), args.cases, args.interpret)

    os.environ.setdefault('TRITON_INTERPRET', '1' if args.interpret else '0')
    ta = importlib.import_module(KERNEL_MODULE)
    jobs = [(k, i, f"BM={c.kwargs['BLOCK_M']} BN={c.kwargs['BLOCK_N']} warps={c.num_warps} stages={c.num_stages}")
            for k in args.kernels for i, c in enumerate(ta.kernel_configs(k))]
    t0 = time.time()
    # all children at once (compiling dominates: one CPU core each; the GPU work is small)
    n_par = args.jobs or (1 if args.interpret else min(len(jobs), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(n_par) as pool:
        futures = {
            job: pool.submit(_run_config, job[0], job[1], args.cases, args.interpret, args.timeout)
            for job in jobs
        }
        results = {job: f.result() for job, f in futures.items()}
    n_bad = 0
    for job in jobs:
        kernel, index, cfg = job
        for line in results[job]:
            detail = line.get('error') or f"max rel err {line['max_rel']:.2e}"
            n_bad += line['status'] != 'ok'
            print(f"{line['status']:5s} {kernel:4s} #{index} {cfg:34s} {line['case']:20s} {detail}")
    print(f'{len(jobs)} configs x {len(args.cases)} cases: {n_bad} not ok; {time.time() - t0:.0f} s')
    sys.exit(1 if n_bad else 0)


if __name__ == '__main__':
    main()
