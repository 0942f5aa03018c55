"""CMT's DETR-style decoder with the geometric-bias cross-attention.

Each layer (post-norm): self-attention over queries (DN block mask; mmcv ``MultiheadAttention`` run through SDPA)
-> LN -> cross-attention over memory tokens
[BEV tokens; image tokens] with ``GeometricBiasAttention`` (query points = reference points in metres, key lines
= BEV vertical lines / camera rays) -> LN -> FFN -> LN. Every layer output goes through a shared final LN
(``post_norm``) and is returned; the next layer takes the un-normalised output (as mmcv 1.x PETR/CMT).
Shapes: query/query_pos (B, Nq, C); memory/memory_pos (B, Nk, C); ref_points (B, Nq, 3) metres;
key_lines = (o, d) each (B, Nk, 3) or (Nk, 3); self_attn_mask (Nq, Nq) bool, True = blocked.
"""
import copy
from contextlib import nullcontext
from typing import Optional, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmengine.model import BaseModule, ModuleList
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from mmdet3d.registry import MODELS

_AMP_DTYPES = {None: None, 'float32': None, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


@MODELS.register_module()
class CmtDecoderLayer(BaseModule):
    """self-attn -> LN -> cross-attn (bias attention) -> LN -> FFN -> LN.

    Args:
        self_attn_cfg (dict): kwargs of mmcv ``MultiheadAttention`` (batch_first is forced).
        cross_attn_cfg (dict): cfg of the cross-attention (``type='GeometricBiasAttention'``).
        ffn_cfg (dict): kwargs of mmcv ``FFN``.
        norm_cfg (dict): norm cfg of the three post-norms.
        cross_attn_dtype (str, optional): 'float16' | 'bfloat16' runs the cross-attention under autocast
            (the attention core's precision); None / 'float32' keeps it in fp32.
    """

    def __init__(self,
                 self_attn_cfg: dict,
                 cross_attn_cfg: dict,
                 ffn_cfg: dict,
                 norm_cfg: dict = dict(type='LN'),
                 cross_attn_dtype: Optional[str] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        if cross_attn_dtype not in _AMP_DTYPES:
            raise ValueError(f'cross_attn_dtype must be one of {list(_AMP_DTYPES)}, got {cross_attn_dtype!r}')
        self.cross_attn_dtype = _AMP_DTYPES[cross_attn_dtype]
        self.self_attn = MultiheadAttention(**dict(self_attn_cfg, batch_first=True))
        self.cross_attn = MODELS.build(cross_attn_cfg)
        self.ffn = FFN(**ffn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.norms = ModuleList([build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(3)])

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                memory: Tensor,
                memory_pos: Tensor,
                ref_points: Tensor,
                key_lines: Tuple[Tensor, Tensor],
                self_attn_mask: Optional[Tensor] = None) -> Tensor:
        query = self.norms[0](self._self_attention(query, query_pos, self_attn_mask))
        dtype = self.cross_attn_dtype
        amp = nullcontext() if dtype is None else torch.autocast(query.device.type, dtype=dtype)
        with amp:
            query = self.cross_attn(
                query,
                key=memory,
                value=memory,
                query_pos=query_pos,
                key_pos=memory_pos,
                ref_points=ref_points,
                key_lines=key_lines)
        query = self.norms[1](query.float())
        return self.norms[2](self.ffn(query))

    def _self_attention(self, query: Tensor, query_pos: Tensor, attn_mask: Optional[Tensor]) -> Tensor:
        """mmcv ``MultiheadAttention.forward`` of ``self_attn`` (q = k = query + query_pos, v = query; its dropouts
        and identity residual), asking ``nn.MultiheadAttention`` for no attention weights: it then runs
        ``F.scaled_dot_product_attention`` (softmax and attention dropout fused) instead of materialising the
        (B*H, Nq, Nq) fp32 weights, which mmcv's call computes, averages over the heads and discards. Same
        parameters, same function. query/query_pos (B, Nq, C); attn_mask (Nq, Nq) bool, True = blocked."""
        attn = self.self_attn
        qk = (query + query_pos).transpose(0, 1)  # nn.MultiheadAttention inside mmcv's is sequence-first
        out = attn.attn(qk, qk, query.transpose(0, 1), attn_mask=attn_mask, need_weights=False)[0]
        return query + attn.dropout_layer(attn.proj_drop(out.transpose(0, 1)))


@MODELS.register_module()
class CmtTransformerDecoder(BaseModule):
    """``num_layers`` x ``CmtDecoderLayer`` (un-shared weights, so one ``bias_scale`` per layer).

    Args:
        num_layers (int): decoder depth (CMT: 6).
        layer_cfg (dict): kwargs of ``CmtDecoderLayer``.
        post_norm_cfg (dict): final norm applied to every layer output.
        with_cp (bool): gradient checkpointing per layer.
    """

    def __init__(self,
                 num_layers: int,
                 layer_cfg: dict,
                 post_norm_cfg: dict = dict(type='LN'),
                 with_cp: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.layers = ModuleList([CmtDecoderLayer(**copy.deepcopy(layer_cfg)) for _ in range(num_layers)])
        self.embed_dims = self.layers[0].embed_dims
        self.post_norm = build_norm_layer(post_norm_cfg, self.embed_dims)[1]
        self.with_cp = with_cp

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                memory: Tensor,
                memory_pos: Tensor,
                ref_points: Tensor,
                key_lines: Tuple[Tensor, Tensor],
                self_attn_mask: Optional[Tensor] = None) -> Tensor:
        """Returns (num_layers, B, Nq, C) post-normed outputs of every layer."""
        outs = []
        for layer in self.layers:
            args = (query, query_pos, memory, memory_pos, ref_points, key_lines, self_attn_mask)
            if self.with_cp and self.training:
                query = checkpoint(layer, *args, use_reentrant=False)
            else:
                query = layer(*args)
            outs.append(self.post_norm(query))
        return torch.stack(outs)


@MODELS.register_module()
class CmtTransformer(BaseModule):
    """Runs the decoder from zero content queries over the memory tokens (CMT's ``CmtTransformer``).

    Args:
        decoder (dict): kwargs of ``CmtTransformerDecoder``.
    """

    def __init__(self, decoder: dict, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.decoder = CmtTransformerDecoder(**decoder)
        self.embed_dims = self.decoder.embed_dims

    def init_weights(self) -> None:
        """Sub-module inits (e.g. ``bias_scale``), then CMT's ``CmtTransformer.init_weights``: mmcv
        ``xavier_init(m, distribution='uniform')`` on every module whose ``weight`` is a matrix, i.e. xavier-uniform
        weight and **zero bias** (FFN and output-projection Linears); the fused attention ``in_proj_weight``
        matrices are xavier-uniform too (PyTorch's / CMT's ``FlashMHA`` default) with zero ``in_proj_bias``."""
        super().init_weights()
        for p in self.parameters():
            if p.dim() > 1:
                torch.nn.init.xavier_uniform_(p)
        for m in self.modules():
            weight = getattr(m, 'weight', None)
            bias = getattr(m, 'bias', None)
            if isinstance(weight, torch.Tensor) and weight.dim() > 1 and isinstance(bias, torch.Tensor):
                torch.nn.init.zeros_(bias)

    def forward(self,
                memory: Tensor,
                memory_pos: Tensor,
                query_pos: Tensor,
                ref_points: Tensor,
                key_lines: Tuple[Tensor, Tensor],
                self_attn_mask: Optional[Tensor] = None) -> Tensor:
        """memory/memory_pos (B, Nk, C), query_pos (B, Nq, C), ref_points (B, Nq, 3) metres ->
        (num_layers, B, Nq, C)."""
        query = torch.zeros_like(query_pos)
        return self.decoder(query, query_pos, memory, memory_pos, ref_points, key_lines, self_attn_mask)
