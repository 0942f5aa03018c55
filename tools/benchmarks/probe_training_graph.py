"""Probe (GPU): can the training image branch (the full config's R50 + CPFPN with its ``with_cp=True`` /
``norm_eval``) run as ``torch.cuda.make_graphed_callables`` under fp16 autocast? For ``with_cp`` True and False it
prints either the capture's error or the eager vs graphed host ms of the forward call, fwd+bwd ms, peak memory and
the output / gradient differences on a new input.

    python tools/benchmarks/probe_training_graph.py

Session 22 (H200): both fail (``with_cp=True``: mmdet's reentrant checkpointing cannot run under the
``torch.autograd.grad`` that captures the backward; ``with_cp=False``: the capture was invalidated); see
``docs/benchmarks/README.md``.
"""
import os.path as osp
import statistics
import sys
import time

import torch

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.benchmarks.benchmark_model import build_model  # noqa: E402

CFG = 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py'


class ImageBranch(torch.nn.Module):
    """imgs (B*N, 3, H, W) -> the neck's first level (B*N, C, H/16, W/16)."""

    def __init__(self, model):
        super().__init__()
        self.backbone, self.neck = model.img_backbone, model.img_neck

    def forward(self, imgs):
        return self.neck(self.backbone(imgs))[0]


def time_steps(fn, imgs, steps=10, warmup=3):
    """Median host ms of the forward call and of forward + backward (synchronized)."""
    fwd, total = [], []
    for i in range(warmup + steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast('cuda', dtype=torch.float16):
            out = fn(imgs)
        t1 = time.perf_counter()
        out.float().square().mean().backward()
        torch.cuda.synchronize()
        if i >= warmup:
            fwd.append((t1 - t0) * 1e3)
            total.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(fwd), statistics.median(total)


def probe(with_cp):
    from mmdet3d.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    options = {} if with_cp else {'model.img_backbone.with_cp': False}
    model = build_model(CFG, None, None, torch.device('cuda'), None, options)
    branch = ImageBranch(model).cuda().train()
    params = [p for p in branch.parameters() if p.requires_grad]
    imgs = torch.randn(12, 3, 320, 800, device='cuda')
    torch.cuda.reset_peak_memory_stats()
    eager_fwd, eager_total = time_steps(branch, imgs)
    eager_peak = torch.cuda.max_memory_allocated() / 2**20
    new = torch.randn_like(imgs)
    for p in params:
        p.grad = None
    with torch.autocast('cuda', dtype=torch.float16):
        ref = branch(new)
    ref.float().square().mean().backward()
    ref_grads = [p.grad.clone() for p in params]
    try:
        with torch.autocast('cuda', dtype=torch.float16, cache_enabled=False):
            graphed = torch.cuda.make_graphed_callables(branch, (imgs.clone(), ), num_warmup_iters=3)
    except Exception as e:  # the finding: report it
        print(f'with_cp={with_cp}: make_graphed_callables failed: {type(e).__name__}: {str(e)[:400]}')
        return
    for p in params:
        p.grad = None
    with torch.autocast('cuda', dtype=torch.float16):
        out = graphed(new)
    out.float().square().mean().backward()
    out_diff = (out.float() - ref.float()).abs().max().item()
    grad_diff = max(
        ((p.grad - g).abs().max() / g.abs().max().clamp_min(1e-12)).item() for p, g in zip(params, ref_grads))
    torch.cuda.reset_peak_memory_stats()
    graph_fwd, graph_total = time_steps(graphed, imgs)
    graph_peak = torch.cuda.max_memory_allocated() / 2**20
    print(f'with_cp={with_cp}: eager fwd host {eager_fwd:.2f} ms, fwd+bwd {eager_total:.2f} ms, peak {eager_peak:.0f} '
          f'MiB | graphed fwd host {graph_fwd:.2f} ms, fwd+bwd {graph_total:.2f} ms, peak {graph_peak:.0f} MiB | '
          f'max |out diff| {out_diff:.3g}, max relative grad diff {grad_diff:.3g}')


def main():
    if not torch.cuda.is_available():
        sys.exit('probe_training_graph.py needs a CUDA device (CUDA graphs)')
    for with_cp in (True, False):
        probe(with_cp)
        torch.cuda.empty_cache()


if __name__ == '__main__':
    main()
