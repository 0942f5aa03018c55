"""Self-attention of the decoder at the training shape: mmcv MultiheadAttention (need_weights=True, its default)
against the same module called with need_weights=False (SDPA inside nn.MultiheadAttention). fwd+bwd, events + wall."""
import time

import torch
from mmcv.cnn.bricks.transformer import MultiheadAttention

torch.manual_seed(0)
dev = 'cuda'
m = MultiheadAttention(256, 8, attn_drop=0.1, batch_first=True).to(dev).train()
B, Q = 2, 1300
x = torch.randn(B, Q, 256, device=dev, requires_grad=True)
pos = torch.randn(B, Q, 256, device=dev)
mask = torch.zeros(Q, Q, dtype=torch.bool, device=dev)
mask[400:, :400] = True
for g in range(10):
    s = slice(g * 40, (g + 1) * 40)
    mask[s, :400] = True
    mask[s, s] = False


def call_default():
    return m(x, query_pos=pos, key_pos=pos, attn_mask=mask)


def call_noweights():
    q = x + pos
    out = m.attn(q, q, x, attn_mask=mask, need_weights=False)[0]
    return x + m.dropout_layer(m.proj_drop(out))


for name, fn in (('need_weights=True (mmcv default)', call_default), ('need_weights=False', call_noweights)) * 2:
    for _ in range(5):
        fn().sum().backward()
    torch.cuda.synchronize()
    evs = []
    walls = []
    for _ in range(30):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        a.record()
        fn().sum().backward()
        b.record()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - t0) * 1000)
        evs.append(a.elapsed_time(b))
    evs.sort()
    walls.sort()
    print(f'{name:34s} fwd+bwd events {evs[15]:.3f} ms  wall {walls[15]:.3f} ms', flush=True)
