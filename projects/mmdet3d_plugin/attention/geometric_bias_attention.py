"""``GeometricBiasAttention``: multi-head attention with the geometric bias
``-bias_scale[h] * dist2(ref_point_i / L, key_line_j / L)``, a drop-in for
the cross-attention of a DETR-style decoder (mmcv ``MultiheadAttention``
semantics)."""
import logging
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import build_dropout
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet3d.registry import MODELS
from .dispatch import resolve_mode, run_path
from .path_inputs import VALID_BIAS_MODES, check_bias_mode


def mha_masks_to_additive(attn_mask: Optional[Tensor], key_padding_mask: Optional[Tensor], batch: int, heads: int,
                          nq: int, nk: int) -> Optional[Tensor]:
    """``nn.MultiheadAttention`` masks -> one additive fp32 mask.

    Args:
        attn_mask: (Nq, Nk) or (B*H, Nq, Nk); bool/uint8 True = do not
            attend, or float (added to the logits).
        key_padding_mask: (B, Nk); bool/uint8 True = padding, or float.

    Returns:
        None or a float mask broadcastable to (B, H, Nq, Nk).
    """

    def to_float(m):
        if m.is_floating_point():
            return m.float()
        return torch.zeros(m.shape, device=m.device).masked_fill_(m.bool(), float('-inf'))

    mask = None
    if attn_mask is not None:
        if attn_mask.shape == (nq, nk):
            mask = to_float(attn_mask)[None, None]
        elif attn_mask.shape == (batch * heads, nq, nk):
            mask = to_float(attn_mask).view(batch, heads, nq, nk)
        else:
            raise ValueError(f'attn_mask must have shape (Nq, Nk) = {(nq, nk)} or '
                             f'(B*H, Nq, Nk) = {(batch * heads, nq, nk)}; got '
                             f'{tuple(attn_mask.shape)}')
    if key_padding_mask is not None:
        if key_padding_mask.shape != (batch, nk):
            raise ValueError(f'key_padding_mask must have shape (B, Nk) = '
                             f'{(batch, nk)}; got '
                             f'{tuple(key_padding_mask.shape)}')
        pad = to_float(key_padding_mask)[:, None, None, :]
        mask = pad if mask is None else mask + pad
    return mask


_CORE_DTYPES = {None: None, 'float32': None, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


@MODELS.register_module()
class GeometricBiasAttention(BaseModule):
    """Multi-head attention with a learnable per-head geometric bias.

    ``softmax(q k^T / sqrt(D) - bias_scale[h] * dist2(r_i/L, line_j/L)) v``
    with r = ``ref_points`` (B, Nq, 3) and lines = ``key_lines`` (o, d)
    (metres, LiDAR frame), L = ``length_scale`` (metres).

    Args:
        embed_dims: C. num_heads: H (head dim D = C / H).
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
        dropout_layer: mmcv dropout cfg applied before the residual add.
        batch_first: (B, N, C) inputs when True, else (N, B, C).
        bias_mode: one of ``VALID_BIAS_MODES``: 'sdpa' (dense bias as the
            SDPA mask), 'svd' (randomised rank-``svd_rank`` factors of the
            dense bias), 'exact' (exact rank-10 factors concatenated to q/k),
            'triton' (fused kernel), 'auto' (triton on CUDA when available,
            else exact; sdpa when only a ``dense_bias`` is given).
        use_bias: False gives plain multi-head attention (no ``bias_scale``
            parameter; ``ref_points``/``key_lines``/``dense_bias`` ignored).
        bias_scale_init: float or H floats, initial ``bias_scale``.
        length_scale: metres; coordinates are divided by it.
        svd_rank: rank of the 'svd' path.
        core_dtype: None (default) runs the attention core in the dtype of
            the projections (fp32, or the autocast dtype around the module);
            'float16' / 'bfloat16' casts q, k, v to it for the core only and
            the core's output back before ``out_proj``, i.e. fp32 projections
            around a half-precision core, as CMT's flash-attn cross-attention
            (``FlashAttention`` under ``auto_fp16(out_fp32=True)``).

    ``resolved_mode`` is the path the last forward ran ('sdpa', 'svd',
    'exact', 'triton'; 'none' with ``use_bias=False``; None before the first
    forward). 'auto' is resolved once per device / head dims / mask and
    dropout presence and then reused; setting ``bias_mode`` clears that.

    Parameters are stored like mmcv's ``MultiheadAttention`` (an
    ``nn.MultiheadAttention`` as ``self.attn``), so state-dict keys are
    ``attn.in_proj_weight`` (3C, C), ``attn.in_proj_bias`` (3C,),
    ``attn.out_proj.{weight,bias}`` (as in CMT checkpoints), plus
    ``bias_scale`` (H,). ``in_proj_weight``/``in_proj_bias``/``out_proj``
    are also attributes of this module.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 attn_drop: float = 0.0,
                 proj_drop: float = 0.0,
                 dropout_layer: Optional[dict] = dict(type='Dropout', drop_prob=0.),
                 batch_first: bool = True,
                 bias_mode: str = 'auto',
                 use_bias: bool = True,
                 bias_scale_init: Union[float, Sequence[float]] = 1.0,
                 length_scale: float = 10.0,
                 svd_rank: int = 10,
                 core_dtype: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        if not float(length_scale) > 0:
            raise ValueError(f'length_scale must be > 0 metres, got '
                             f'{length_scale}')
        if int(svd_rank) < 1:
            raise ValueError(f'svd_rank must be >= 1, got {svd_rank}')
        if core_dtype not in _CORE_DTYPES:
            raise ValueError(f'core_dtype must be one of '
                             f'{list(_CORE_DTYPES)}, got {core_dtype!r}')
        self.core_dtype = _CORE_DTYPES[core_dtype]
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dim = embed_dims // num_heads
        self.batch_first = batch_first
        self.bias_mode = bias_mode
        self.use_bias = use_bias
        self.length_scale = float(length_scale)
        self.svd_rank = int(svd_rank)
        self.attn_drop = float(attn_drop)
        # Parameter holder only (forward runs through SDPA): same names and
        # initialisation as nn.MultiheadAttention / mmcv MultiheadAttention.
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=attn_drop, batch_first=True)
        self.proj_drop = nn.Dropout(proj_drop)
        self.dropout_layer = build_dropout(dropout_layer) if dropout_layer else nn.Identity()
        if use_bias:
            init = torch.as_tensor(bias_scale_init, dtype=torch.float32)
            if init.dim() == 0:
                init = init.repeat(num_heads)
            if init.shape != (num_heads, ):
                raise ValueError(f'bias_scale_init must be a float or '
                                 f'{num_heads} floats, got {bias_scale_init}')
            self.bias_scale = nn.Parameter(init.clone())
        else:
            self.register_parameter('bias_scale', None)
        self._svd_error_reported = False
        self.resolved_mode: Optional[str] = None

    @property
    def bias_mode(self) -> str:
        """The configured mode, one of ``VALID_BIAS_MODES``."""
        return self._bias_mode

    @bias_mode.setter
    def bias_mode(self, mode: str) -> None:
        self._bias_mode = check_bias_mode(mode)
        self._resolved_paths = {}

    @property
    def in_proj_weight(self) -> nn.Parameter:
        return self.attn.in_proj_weight

    @property
    def in_proj_bias(self) -> nn.Parameter:
        return self.attn.in_proj_bias

    @property
    def out_proj(self) -> nn.Linear:
        return self.attn.out_proj

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'bias_mode={self.bias_mode!r}, use_bias={self.use_bias}, '
                f'length_scale={self.length_scale}, svd_rank={self.svd_rank}, '
                f'core_dtype={self.core_dtype}')

    def _heads(self, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """(B, N, C) -> projected (B, H, N, D)."""
        bsz, n, _ = x.shape
        return F.linear(x, w, b).view(bsz, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _key_lines(self, key_lines) -> Tuple[Tensor, Tensor]:
        if not isinstance(key_lines, (tuple, list)) or len(key_lines) != 2:
            raise ValueError('key_lines must be a pair (o, d) of (B, Nk, 3) '
                             'or (Nk, 3) tensors, got '
                             f'{type(key_lines).__name__}')
        return key_lines[0], key_lines[1]

    def _path(self, q: Tensor, v: Tensor, dense_bias: Optional[Tensor], mask: Optional[Tensor],
              dropout_p: float) -> str:
        """The concrete path for these inputs: ``resolve_mode`` once per
        (device, head dims, dense bias / mask / dropout present), logged
        when it changes."""
        key = (q.device, q.shape[-1], v.shape[-1], dense_bias is None, mask is None, dropout_p == 0)
        path = self._resolved_paths.get(key)
        if path is None:
            path = self._resolved_paths[key] = resolve_mode(self.bias_mode, q, v, dense_bias, mask, dropout_p)
        if path != self.resolved_mode:
            print_log(f'GeometricBiasAttention: bias_mode={self.bias_mode!r} runs '
                      f'the {path!r} path',
                      logger='current',
                      level=logging.DEBUG)
        return path

    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None,
                key_pos: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                ref_points: Optional[Tensor] = None,
                key_lines: Optional[Tuple[Tensor, Tensor]] = None,
                dense_bias: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """query (B, Nq, C), key/value (B, Nk, C) (batch_first) ->
        ``identity + dropout_layer(proj_drop(out_proj(attention)))``.

        ref_points (B, Nq, 3) metres; key_lines (o, d) each (B, Nk, 3) or
        (Nk, 3); dense_bias (B, H, Nq, Nk) for 'sdpa'/'svd' only (added to
        the geometric bias when ref_points/key_lines are given too).
        attn_mask / key_padding_mask as in ``nn.MultiheadAttention``; they
        force a masked SDPA kernel, so pass None when there is no padding.
        Extra kwargs (from mmcv transformer layers) are ignored.
        """
        if key is None:
            key = query
        if value is None:
            value = key
        if identity is None:
            identity = query
        if key_pos is None and query_pos is not None and \
                query_pos.shape == key.shape:
            key_pos = query_pos
        if query_pos is not None:
            query = query + query_pos
        if key_pos is not None:
            key = key + key_pos
        if not self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        bsz, nq, _ = query.shape
        nk = key.shape[1]
        c = self.embed_dims
        w, b = self.attn.in_proj_weight, self.attn.in_proj_bias
        q = self._heads(query, w[:c], b[:c])
        k = self._heads(key, w[c:2 * c], b[c:2 * c])
        v = self._heads(value, w[2 * c:], b[2 * c:])
        proj_dtype = v.dtype
        if self.core_dtype is not None:
            q, k, v = (x.to(self.core_dtype) for x in (q, k, v))
        mask = mha_masks_to_additive(attn_mask, key_padding_mask, bsz, self.num_heads, nq, nk)
        dropout_p = self.attn_drop if self.training else 0.0

        if not self.use_bias:
            if mask is not None:
                mask = mask.to(q.dtype)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            self.resolved_mode = 'none'
        else:
            o = d = None
            if key_lines is not None:
                o, d = self._key_lines(key_lines)
            if dense_bias is None and (ref_points is None or o is None):
                raise ValueError('GeometricBiasAttention(use_bias=True) needs ref_points '
                                 '(B, Nq, 3) and key_lines=(o, d) ((B, Nk, 3) or (Nk, 3)),'
                                 ' or dense_bias (B, H, Nq, Nk) with bias_mode sdpa/svd; '
                                 f'got ref_points={ref_points is not None}, '
                                 f'key_lines={key_lines is not None}')
            if (ref_points is None) != (o is None):
                raise ValueError('give both ref_points and key_lines, or '
                                 'neither (with a dense_bias)')
            path = self._path(q, v, dense_bias, mask, dropout_p)
            check_svd = path == 'svd' and not self._svd_error_reported
            out = run_path(
                path,
                q,
                k,
                v,
                ref_points,
                o,
                d,
                self.bias_scale,
                self.length_scale,
                dense_bias=dense_bias,
                attn_mask=mask,
                dropout_p=dropout_p,
                svd_rank=self.svd_rank,
                check_svd_error=check_svd)
            self._svd_error_reported |= check_svd
            self.resolved_mode = path
        out = out.transpose(1, 2).reshape(bsz, nq, c)
        if self.core_dtype is not None:
            out = out.to(proj_dtype)
        out = self.attn.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return identity + self.dropout_layer(self.proj_drop(out))


__all__ = ['GeometricBiasAttention', 'mha_masks_to_additive', 'VALID_BIAS_MODES']
