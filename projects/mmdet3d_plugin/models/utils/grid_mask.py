"""GridMask image augmentation (Chen et al., "GridMask Data Augmentation", 2020)
as CMT / PETR apply it to multi-view images inside the detector at train time.

One grid is drawn per call and shared by every image and channel of the batch.
On a canvas 1.5x the image (hh = int(1.5 H), ww = int(1.5 W)) with period
d ~ U{2, ..., H-1}, stripe width l = clip(int(d * ratio + 0.5), 1, d - 1) and
offsets st_h, st_w ~ U{0, ..., d-1}: rows st_h + k d .. st_h + k d + l - 1
(k = 0 .. hh // d - 1) and likewise columns (if ``use_h`` / ``use_w``) are the
stripes. The canvas is rotated by r ~ U{0, ..., rotate-1} degrees
(counter-clockwise, nearest, zero fill) and its centre H x W crop is taken.
mode 0 drops the stripes, mode 1 keeps only the stripes (drops the (d-l)^2
squares between them; CMT uses mode 1, ratio 0.5: ~25 % of pixels dropped).
Dropped pixels become 0, or U(-1, 1) noise (per pixel, shared by channels)
with ``offset=True``.

Randomness comes from torch's global CPU generator (seeded by mmengine's
``randomness`` / ``torch.manual_seed``).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdet3d.registry import MODELS


@MODELS.register_module()
class GridMask(nn.Module):
    """GridMask on image tensors of shape (..., H, W), e.g. (B*N, C, H, W).

    Args:
        use_h: stripe rows.
        use_w: stripe columns.
        rotate: rotation drawn from {0, ..., rotate-1} degrees (1: none).
        offset: fill dropped pixels with U(-1, 1) noise instead of 0.
        ratio: stripe width / period.
        mode: 0 drops the stripes, 1 keeps only the stripes.
        prob: probability of masking a batch (train mode only).
    """

    def __init__(self,
                 use_h: bool = True,
                 use_w: bool = True,
                 rotate: int = 1,
                 offset: bool = False,
                 ratio: float = 0.5,
                 mode: int = 0,
                 prob: float = 1.0):
        super().__init__()
        if mode not in (0, 1):
            raise ValueError(f'GridMask: mode must be 0 or 1, got {mode!r}')
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'GridMask: prob must be in [0, 1], got {prob!r}')
        if int(rotate) < 1:
            raise ValueError(f'GridMask: rotate must be an int >= 1, got '
                             f'{rotate!r}')
        if ratio <= 0:
            raise ValueError(f'GridMask: ratio must be > 0, got {ratio!r}')
        self.use_h = use_h
        self.use_w = use_w
        self.rotate = int(rotate)
        self.offset = offset
        self.ratio = ratio
        self.mode = mode
        self.st_prob = prob
        self.prob = prob

    def set_prob(self, epoch: int, max_epoch: int) -> None:
        """Linear warm-up of the probability: prob = st_prob * epoch / max."""
        self.prob = self.st_prob * epoch / max_epoch

    def make_mask(self, h: int, w: int, d: int, st_h: int, st_w: int, angle: float = 0.0, device=None) -> torch.Tensor:
        """The (h, w) float keep-mask (1 keep, 0 drop) for one grid draw."""
        hh, ww = int(1.5 * h), int(1.5 * w)
        width = min(max(int(d * self.ratio + 0.5), 1), d - 1)

        def stripes(n: int, start: int) -> torch.Tensor:
            rel = torch.arange(n, device=device) - start
            return (rel >= 0) & (rel < d * (n // d)) & (rel % d < width)

        canvas = torch.zeros(hh, ww, dtype=torch.bool, device=device)
        if self.use_h:
            canvas |= stripes(hh, st_h)[:, None]
        if self.use_w:
            canvas |= stripes(ww, st_w)[None, :]
        keep = (~canvas).float()  # mode 0: 1 outside the stripes
        if angle:
            keep = _rotate_nearest(keep, angle)
        top, left = (hh - h) // 2, (ww - w) // 2
        keep = keep[top:top + h, left:left + w]
        return 1.0 - keep if self.mode == 1 else keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or torch.rand(()).item() >= self.prob:
            return x
        if x.dim() < 2 or x.shape[-2] < 3:
            raise ValueError(f'GridMask: expected images (..., H, W) with '
                             f'H >= 3, got shape {tuple(x.shape)}')
        h, w = x.shape[-2:]
        d = int(torch.randint(2, h, ()))
        st_h, st_w = (int(v) for v in torch.randint(d, (2, )))
        angle = float(torch.randint(self.rotate, ()))
        mask = self.make_mask(h, w, d, st_h, st_w, angle, x.device).to(x.dtype)
        if self.offset:
            noise = (2 * (torch.rand(h, w) - 0.5)).to(x)
            return x * mask + noise * (1 - mask)
        return x * mask


def _rotate_nearest(img: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate a (H, W) map counter-clockwise (as displayed, rows downwards)
    by ``angle`` degrees about its centre; nearest sampling, zero fill."""
    h, w = img.shape
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    # Inverse map in pixel units, then back to grid_sample's [-1, 1] coords:
    # x_src = cos x - sin y * (h/w), y_src = sin x * (w/h) + cos y.
    theta = torch.tensor([[cos, -sin * h / w, 0.0], [sin * w / h, cos, 0.0]], dtype=img.dtype, device=img.device)
    grid = F.affine_grid(theta[None], (1, 1, h, w), align_corners=False)
    out = F.grid_sample(img[None, None], grid, mode='nearest', padding_mode='zeros', align_corners=False)
    return out[0, 0]
