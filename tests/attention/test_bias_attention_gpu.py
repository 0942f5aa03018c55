"""CUDA checks of the bias paths (skipped on CPU): fp64-reference errors at a
CMT-like shape in bf16, and the exact path running on flash/cuDNN kernels
(no dense bias, no mem-efficient/math fallback)."""
import pytest
import torch

from projects.mmdet3d_plugin.attention import bev_key_lines, bias_attention, resolve_mode
from projects.mmdet3d_plugin.attention.testing import reference_attention_fp64

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')]


def _case(b=2, h=8, nq=900, dtype=torch.bfloat16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    o, d = bev_key_lines([-54.0, -54.0, -5.0, 54.0, 54.0, 3.0], (64, 64))
    nk = o.shape[0]
    r = (torch.rand(b, nq, 3, generator=gen) * 2 - 1) * torch.tensor([54.0, 54.0, 3.0])
    dev = 'cuda'
    q, k, v = (torch.randn(b, h, n, 32, generator=gen).to(dev, dtype) for n in (nq, nk, nk))
    scale = 0.5 + torch.rand(h, generator=gen)
    return [t.to(dev).requires_grad_(t.is_floating_point())
            for t in (q, k, v, r)] + [o.to(dev), d.to(dev), scale.to(dev).requires_grad_()]


def _rel(a, b):
    return float((a.detach().double() - b.detach()).norm() / b.norm())


@pytest.mark.parametrize('mode', ['sdpa', 'svd', 'exact', 'auto'])
def test_cuda_paths_vs_fp64(mode):
    q, k, v, r, o, d, s = _case()
    g = torch.randn(q.shape, device='cuda', dtype=torch.float64)
    ref = reference_attention_fp64(q, k, v, r, o, d, s, 10.0)
    want = torch.autograd.grad((ref * g).sum(), [q, s, r])
    out = bias_attention(q, k, v, r, o, d, s, 10.0, mode=mode)
    got = torch.autograd.grad((out.double() * g).sum(), [q, s, r])
    assert _rel(out, ref) < 8e-3
    assert _rel(got[0], want[0]) < 1.5e-2
    assert _rel(got[1], want[1]) < (3e-2 if mode == 'sdpa' else 0.15)
    assert _rel(got[2], want[2]) < 3e-2


def test_exact_runs_on_flash_or_cudnn_only():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q, k, v, r, o, d, s = _case(nq=256)
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION]):
        out = bias_attention(q, k, v, r, o, d, s, 10.0, mode='exact')
        out.float().square().sum().backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(r.grad).all()


def test_auto_picks_triton_when_available():
    """The documented rule (README): 'auto' is 'triton' on CUDA when the
    triton package is installed, else 'exact'. A broken Triton install fails
    here instead of silently falling back."""
    import importlib.util
    q = torch.zeros(1, 1, 4, 32, device='cuda', dtype=torch.bfloat16)
    expected = 'triton' if importlib.util.find_spec('triton') else 'exact'
    assert resolve_mode('auto', q) == expected


@pytest.mark.parametrize('mode', ['exact', 'auto', 'svd'])
def test_module_cuda_autocast_matches_cpu_fp32(mode):
    """Through the module q/k/v are strided (B, H, N, D) views of the
    projections, as in the detector; bf16 autocast on CUDA vs fp32 on CPU."""
    from projects.mmdet3d_plugin.attention import GeometricBiasAttention
    gen = torch.Generator().manual_seed(1)
    module = GeometricBiasAttention(256, 8, bias_mode=mode)
    query = torch.randn(2, 900, 256, generator=gen)
    key = torch.randn(2, 4096, 256, generator=gen)
    o, d = bev_key_lines([-54.0, -54.0, -5.0, 54.0, 54.0, 3.0], (64, 64))
    ref_points = (torch.rand(2, 900, 3, generator=gen) * 2 - 1) * 50
    cpu = GeometricBiasAttention(256, 8, bias_mode='exact')
    cpu.load_state_dict(module.state_dict())
    ref = cpu(query, key, key, ref_points=ref_points, key_lines=(o, d))
    module.cuda()
    rp = ref_points.cuda().requires_grad_()
    with torch.autocast('cuda', dtype=torch.bfloat16):
        out = module(query.cuda(), key.cuda(), key.cuda(), ref_points=rp, key_lines=(o.cuda(), d.cuda()))
    out.float().square().mean().backward()
    assert float((out.float().cpu() - ref).norm() / ref.norm()) < 1e-2
    assert torch.isfinite(module.bias_scale.grad).all()
    assert rp.grad.abs().sum() > 0
