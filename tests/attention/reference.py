"""Independent fp64 reference for attention with the geometric bias.

A helper module (not a test): the bias-attention tests and the Triton kernel
tests compare against it. It uses only torch, written from the formula:

    out = softmax(q k^T / sqrt(D) - bias_scale[h] * dist2(r/L, line/L)) v
    dist2(p, (o, d)) = |p - o|^2 - ((p - o) . d)^2
"""
import torch


def reference_dist2_fp64(r, o, d, length_scale=1.0):
    """(B, Nq, 3), (B|1, Nk, 3) or (Nk, 3) -> (B, Nq, Nk) fp64."""
    r = r.double() / length_scale
    o = o.double() / length_scale
    d = d.double()
    if o.dim() == 2:
        o, d = o[None], d[None]
    w = r[:, :, None, :] - o[:, None, :, :]  # (B, Nq, Nk, 3)
    along = (w * d[:, None, :, :]).sum(-1)
    return (w * w).sum(-1) - along * along


def reference_attention_fp64(q, k, v, r, o, d, bias_scale, length_scale=1.0,
                             extra_bias=None):
    """fp64 dense-softmax attention with the geometric bias.

    q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv); r (B, Nq, 3);
    o, d (B, Nk, 3) or (Nk, 3); bias_scale (H,). ``r`` may be None when
    ``extra_bias`` (broadcastable to (B, H, Nq, Nk)) is the whole bias.
    Differentiable in every tensor input. Returns (B, H, Nq, Dv) fp64.
    """
    q, k, v = q.double(), k.double(), v.double()
    logits = q @ k.transpose(-1, -2) / q.shape[-1]**0.5
    if r is not None:
        dist2 = reference_dist2_fp64(r, o, d, length_scale)
        logits = logits - bias_scale.double()[None, :, None, None] * \
            dist2[:, None]
    if extra_bias is not None:
        logits = logits + extra_bias.double()
    weights = torch.softmax(logits, dim=-1)
    return weights @ v
