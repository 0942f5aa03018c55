"""CMT's transformer detection head with the geometric-bias cross-attention.

Tokens: BEV tokens (B, H*W, C) from the LiDAR BEV map after ``shared_conv``, row-major over (H, W); image tokens
(B, N*h*w, C) from the stride-16 camera features, ordered (N, h, w). Memory = [BEV tokens; image tokens].
Coordinates encoding: BEV tokens get ``bev_embedding(pos2embed(cell centre))``; image tokens get
``rv_embedding(points at depth bins along their camera ray)``; queries get both encodings of their reference
point (the camera part summed over the views the point projects into). The bias attention sees the same
geometry: key lines = BEV vertical lines through cell centres and camera rays through feature-cell centres,
query points = reference points in metres.
Outputs per decoder layer: cls logits (B, Nq, num_classes) and a 10-d box code in CMT layout
``(cx, cy, log dx, log dy, cz, log dz, sin, cos, vx, vy)`` (see docs/quirks.md on how the branches map to it).
"""
import copy
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmcv.cnn import ConvModule
from mmdet.models.layers import inverse_sigmoid
from mmdet.utils import reduce_mean
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet3d.registry import MODELS, TASK_UTILS
from mmdet3d.structures import LiDARInstance3DBoxes
from ...attention.geometry import bev_key_lines, camera_key_lines
from ..layers.cmt_position_encoding import (denormalize_points, depth_bins, lidar2img_from_metas, lift_pixels,
                                            normalize_points, pixel_centres, pos2embed, project_points)
from ..task_modules.box_codec import encode_boxes, gravity_center_boxes
from ..task_modules.hungarian_assigner import linear_sum_assignments
from ..utils.cuda_graph import CudaGraphCache, graphs_apply
from .query_denoising import DNQueries, build_dn_queries

Lines = Tuple[Tensor, Tensor]
# Position of an image token's pixel inside its feature cell, in cells: centre (ours) or top-left corner (CMT).
_PIXEL_OFFSETS = {'centre': 0.5, 'corner': 0.0}


def _mlp(c_in: int, c_hidden: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, c_hidden), nn.ReLU(inplace=True), nn.Linear(c_hidden, c_out))


def per_layer_mean(loss: Tensor, layers: int, avg_factor: float) -> Tensor:
    """Elementwise losses of all decoder layers stacked along dim 0 (a loss module's ``reduction_override='none'``
    output) -> (layers,) ``sum / (avg_factor + eps)`` per layer: mmdet's ``weight_reduce_loss`` with ``avg_factor``
    and reduction 'mean', layer by layer. A 0-d loss (mmdet's ``L1Loss`` returns ``(pred * weight).sum()`` when every
    weight is 0) is zero and the same for every layer."""
    if loss.dim() == 0:
        loss = loss.expand(layers)
    return loss.reshape(layers, -1).sum(1) / (avg_factor + torch.finfo(torch.float32).eps)


@MODELS.register_module()
class CmtHead(BaseModule):
    """CMT head for fusion, LiDAR-only (``use_img=False``) and camera-only (``use_bev=False``) models.

    Args:
        num_classes (int): number of classes.
        in_channels (int): BEV feature channels (SECONDFPN: 512); ignored when ``use_bev=False``.
        hidden_dim (int): C, token width.
        num_query (int): learned object queries.
        pc_range (list[float]): [x_min, y_min, z_min, x_max, y_max, z_max] metres; normalises reference points,
            encodings and box centres.
        bev_range (list[float], optional): the extent (same 6-list form) that the BEV feature map actually
            covers, for the BEV key lines and encodings; defaults to ``pc_range`` (differs for voxel0100, whose
            1024-voxel grid covers -54..48.4 m, see docs/quirks.md).
        bev_encoding_range (list[float], optional): the extent over which the BEV tokens' position encoding
            places the H x W cell centres (normalised by ``pc_range`` before ``pos2embed``); defaults to
            ``bev_range`` (the true cell centres). CMT spreads voxel0100's 128 cells over the whole ``pc_range``
            (0.84375 m cells, docs/quirks.md #4): ``bev_encoding_range=pc_range`` reproduces it (cmt_compat
            configs). The BEV key lines of the bias always use ``bev_range``.
        img_token_pixel (str): the pixel of each image feature cell that the camera-ray encoding (and the
            camera key lines of the bias) go through: 'centre' (default, ``(j + 0.5) * W / w``) or 'corner'
            (the top-left pixel ``j * W / w``, CMT's ``_rv_pe``; cmt_compat configs).
        depth_num (int): depth bins along camera rays (CMT: 64).
        use_bev / use_img (bool): which token sets exist.
        transformer (dict): ``CmtTransformer`` cfg.
        separate_head (dict): ``CmtSeparateTaskHead`` kwargs (without in_channels/heads/groups).
        common_heads (dict): regression branches name -> (out, num_conv).
        num_cls_convs (int): convs of the classification branch.
        with_dn (bool): query denoising at train time.
        dn_cfg (dict): ``scalar`` (max groups), ``noise_scale``, ``noise_trans``, ``split``, ``dn_weight``.
        bbox_coder (dict): ``CmtNMSFreeCoder`` cfg.
        loss_cls / loss_bbox (dict): loss cfgs (mmdet FocalLoss / L1Loss).
        code_weights (list[float]): weights of the 10 box codes in the L1 loss.
        bg_cls_weight (float): weight of negatives in the classification normaliser (CMT: 0.1).
        sync_avg_factor (bool): all-reduce the matching-loss normalisers over GPUs (CMT: False, per-GPU).
        bias_mode (str, optional) / use_bias (bool, optional): the attention path / bias switch of every
            decoder layer's cross-attention (the configs set them here, the one knob:
            ``--cfg-options model.pts_bbox_head.bias_mode=exact``). When not None they replace the layers'
            own ``cross_attn_cfg`` values, with a warning where those differ. The path each layer ran is
            ``layer.cross_attn.resolved_mode``.
        cuda_graph (bool): at inference on CUDA (eval mode, no grad, no DN queries), replay the head's tensor
            work (tokens, encodings, decoder, task branches) from a CUDA graph captured once per input shape
            (``models/utils/cuda_graph.py``): the batch-1 decoder is bound by kernel launches. Off by default;
            ``--cfg-options model.pts_bbox_head.cuda_graph=True``. Training never uses it.
        train_cfg (dict): ``assigner`` cfg. test_cfg (dict): unused (kept for the detector API).
    """

    def __init__(self,
                 num_classes: int = 10,
                 in_channels: int = 512,
                 hidden_dim: int = 256,
                 num_query: int = 900,
                 pc_range: Sequence[float] = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0),
                 bev_range: Optional[Sequence[float]] = None,
                 bev_encoding_range: Optional[Sequence[float]] = None,
                 img_token_pixel: str = 'centre',
                 depth_num: int = 64,
                 use_bev: bool = True,
                 use_img: bool = True,
                 transformer: dict = None,
                 separate_head: dict = dict(head_conv=64, final_kernel=1, init_bias=-2.19, init_mode='torch_default'),
                 common_heads: dict = dict(center=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
                 num_cls_convs: int = 2,
                 with_dn: bool = True,
                 dn_cfg: dict = dict(scalar=10, noise_scale=1.0, noise_trans=0.0, split=0.75, dn_weight=1.0),
                 bbox_coder: dict = None,
                 loss_cls: dict = dict(
                     type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
                 loss_bbox: dict = dict(type='mmdet.L1Loss', loss_weight=0.25),
                 code_weights: Sequence[float] = (2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2),
                 bg_cls_weight: float = 0.1,
                 sync_avg_factor: bool = False,
                 bias_mode: Optional[str] = None,
                 use_bias: Optional[bool] = None,
                 cuda_graph: bool = False,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        if not (use_bev or use_img):
            raise ValueError('CmtHead needs use_bev or use_img')
        if transformer is None or bbox_coder is None:
            raise ValueError('CmtHead needs `transformer` and `bbox_coder` cfgs')
        if set(common_heads) != {'center', 'height', 'dim', 'rot', 'vel'}:
            raise ValueError(f'common_heads must have keys center, height, dim, rot, vel; got {list(common_heads)}')
        self.num_classes, self.num_query, self.hidden_dim = num_classes, num_query, hidden_dim
        self.use_bev, self.use_img, self.with_dn = use_bev, use_img, with_dn
        self.register_buffer('pc_range', torch.tensor(pc_range, dtype=torch.float32), persistent=False)
        self.register_buffer(
            'bev_range',
            torch.tensor(bev_range if bev_range is not None else pc_range, dtype=torch.float32),
            persistent=False)
        if bev_encoding_range is not None and len(bev_encoding_range) != 6:
            raise ValueError(f'bev_encoding_range must be [x_min, y_min, z_min, x_max, y_max, z_max] or None, got '
                             f'{bev_encoding_range}')
        self.register_buffer(
            'bev_encoding_range',
            torch.tensor(
                bev_encoding_range if bev_encoding_range is not None else self.bev_range.tolist(), dtype=torch.float32),
            persistent=False)
        # Python copies of the ranges: the forward reads them without a device-to-host copy (CUDA graphs).
        self._bev_range = tuple(self.bev_range.tolist())
        self._bev_encoding_range = tuple(self.bev_encoding_range.tolist())
        if img_token_pixel not in _PIXEL_OFFSETS:
            raise ValueError(f"img_token_pixel must be 'centre' or 'corner', got {img_token_pixel!r}")
        self.img_token_pixel = img_token_pixel
        self.register_buffer('depths', depth_bins(depth_num, float(pc_range[3])), persistent=False)
        self.register_buffer('code_weights', torch.tensor(code_weights, dtype=torch.float32), persistent=False)
        self.dn_cfg = dict(dict(scalar=10, noise_scale=1.0, noise_trans=0.0, split=0.75, dn_weight=1.0), **dn_cfg)
        self.bg_cls_weight, self.sync_avg_factor = bg_cls_weight, sync_avg_factor

        transformer = copy.deepcopy(transformer)
        cross_cfg = transformer['decoder']['layer_cfg']['cross_attn_cfg']
        for key, value in (('bias_mode', bias_mode), ('use_bias', use_bias)):
            if value is None:
                continue
            if key in cross_cfg and cross_cfg[key] != value:
                print_log(
                    f'CmtHead: model.pts_bbox_head.{key}={value!r} replaces cross_attn_cfg.{key}='
                    f'{cross_cfg[key]!r} of every decoder layer (set the path on the head only)',
                    logger='current',
                    level=logging.WARNING)
            cross_cfg[key] = value
        self.transformer = MODELS.build(transformer)
        self.num_layers = len(self.transformer.decoder.layers)

        if use_bev:
            self.shared_conv = ConvModule(
                in_channels, hidden_dim, 3, padding=1, conv_cfg=dict(type='Conv2d'), norm_cfg=dict(type='BN2d'))
        if use_img:
            self.rv_embedding = _mlp(depth_num * 3, hidden_dim * 4, hidden_dim)
        self.bev_embedding = _mlp(hidden_dim * 2, hidden_dim, hidden_dim)
        self.reference_points = nn.Embedding(num_query, 3)
        heads = dict(common_heads, cls_logits=(num_classes, num_cls_convs))
        self.task_head = MODELS.build(
            dict(
                type='CmtSeparateTaskHead',
                **separate_head,
                in_channels=hidden_dim,
                heads=heads,
                groups=self.num_layers))
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.assigner = TASK_UTILS.build(train_cfg['assigner']) if train_cfg else None
        if not isinstance(cuda_graph, bool):
            raise TypeError(f'model.pts_bbox_head.cuda_graph must be True or False; got {cuda_graph!r}')
        self._graphs = CudaGraphCache(self._forward_tensors) if cuda_graph else None

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.uniform_(self.reference_points.weight, 0, 1)

    # ------------------------------------------------------------------ tokens and encodings
    def _bev_tokens(self, bev_feat: Tensor) -> Tuple[Tensor, Tensor, Lines]:
        """bev_feat (B, Cin, H, W) -> tokens (B, H*W, C), pos (B, H*W, C), lines (H*W, 3) x2."""
        x = self.shared_conv(bev_feat)
        B, C, H, W = x.shape
        o, d = bev_key_lines(self._bev_range, (H, W), device=x.device)
        o_enc = o
        if self._bev_encoding_range != self._bev_range:
            o_enc = bev_key_lines(self._bev_encoding_range, (H, W), device=x.device)[0]
        coords = (o_enc[:, :2] - self.pc_range[:2]) / (self.pc_range[3:5] - self.pc_range[:2])
        pos = self.bev_embedding(pos2embed(coords, self.hidden_dim))
        return x.flatten(2).transpose(1, 2), pos.expand(B, -1, -1), (o, d)

    def _img_tokens(self, img_feat: Tensor, lidar2img: Tensor, img2lidar: Tensor,
                    img_hw: Tuple[int, int]) -> Tuple[Tensor, Tensor, Lines]:
        """img_feat (B*N, C, h, w), lidar2img and its inverse (B, N, 4, 4) -> tokens/pos (B, N*h*w, C), lines
        (B, N*h*w, 3) x2."""
        BN, C, h, w = img_feat.shape
        B, N = lidar2img.shape[:2]
        if B * N != BN:
            raise ValueError(f'image features (B*N={BN}) do not match lidar2img {tuple(lidar2img.shape)}')
        tokens = img_feat.view(B, N, C, h * w).permute(0, 1, 3, 2).reshape(B, N * h * w, C)
        offset = _PIXEL_OFFSETS[self.img_token_pixel]
        uv = pixel_centres((h, w), img_hw, device=img_feat.device, offset=offset)
        uv = uv.view(1, 1, h * w, 2).expand(B, N, -1, -1)
        pts = lift_pixels(uv, self.depths, img2lidar)  # (B, N, hw, D, 3)
        pos = self.rv_embedding(normalize_points(pts, self.pc_range).flatten(-2)).reshape(B, N * h * w, -1)
        return tokens, pos, camera_key_lines(lidar2img, (h, w), img_hw, pixel_offset=offset)

    def _query_pos(self, ref_norm: Tensor, lidar2img: Optional[Tensor], img2lidar: Optional[Tensor], img_hw) -> Tensor:
        """ref_norm (B, Q, 3) in [0, 1] -> query position encoding (B, Q, C)."""
        pos = self.bev_embedding(pos2embed(ref_norm[..., :2], self.hidden_dim))
        if lidar2img is None:
            return pos
        uv, depth = project_points(denormalize_points(ref_norm, self.pc_range), lidar2img)
        H, W = img_hw
        valid = (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H) & (depth > 0)
        pts = lift_pixels(uv, self.depths, img2lidar)  # (B, N, Q, D, 3)
        rv = self.rv_embedding(normalize_points(pts, self.pc_range).flatten(-2))
        return pos + (rv * valid[..., None]).sum(1)

    # ------------------------------------------------------------------ forward
    def forward(self,
                bev_feat: Optional[Tensor],
                img_feat: Optional[Tensor],
                batch_input_metas: List[dict],
                img_hw: Optional[Tuple[int, int]] = None,
                dn: Optional[DNQueries] = None) -> Dict[str, Tensor]:
        """bev_feat (B, Cin, H, W) or None; img_feat (B*N, C, h, w) or None; img_hw (H, W) of the padded input
        images. Returns ``cls_scores`` (L, B, Nq, num_classes), ``bbox_preds`` (L, B, Nq, 10) and, with DN,
        ``dn_cls_scores`` / ``dn_bbox_preds`` (L, B, P, .). Runs in fp32 (autocast off) except the attention
        core (decoder ``cross_attn_dtype``)."""
        device = (bev_feat if bev_feat is not None else img_feat).device
        with torch.autocast(device.type, enabled=False):
            return self._forward(bev_feat, img_feat, batch_input_metas, img_hw, dn)

    def _forward(self, bev_feat, img_feat, batch_input_metas, img_hw, dn) -> Dict[str, Tensor]:
        if self.use_bev and bev_feat is None:
            raise ValueError('CmtHead(use_bev=True) got no BEV features: the config has no LiDAR branch; '
                             'set model.pts_bbox_head.use_bev=False for camera-only models')
        lidar2img = None
        if self.use_img:
            if img_feat is None or img_hw is None:
                raise ValueError('CmtHead(use_img=True) needs image features and img_hw; set '
                                 'model.pts_bbox_head.use_img=False for LiDAR-only models')
            lidar2img = lidar2img_from_metas(batch_input_metas, device=img_feat.device)
            img_hw = tuple(int(x) for x in img_hw)  # hashable: it selects the CUDA graph
        else:
            img_feat, img_hw = None, None
        bev_feat = bev_feat if self.use_bev else None
        first = bev_feat if bev_feat is not None else img_feat
        if self._graphs is not None and dn is None and graphs_apply(self, first):
            return self._graphs(bev_feat, img_feat, lidar2img, img_hw=img_hw)
        return self._forward_tensors(bev_feat, img_feat, lidar2img, img_hw, dn)

    def _forward_tensors(self,
                         bev_feat: Optional[Tensor],
                         img_feat: Optional[Tensor],
                         lidar2img: Optional[Tensor],
                         img_hw: Optional[Tuple[int, int]] = None,
                         dn: Optional[DNQueries] = None) -> Dict[str, Tensor]:
        """The head's tensor work (no host synchronisation: CUDA graphs capture it); bev_feat (B, Cin, H, W),
        img_feat (B*N, C, h, w), lidar2img (B, N, 4, 4), each None when its modality is off."""
        B = (bev_feat if bev_feat is not None else lidar2img).shape[0]
        parts = []  # (tokens, pos, key lines) per token set, BEV first
        if bev_feat is not None:
            parts.append(self._bev_tokens(bev_feat.float()))
        img2lidar = None
        if lidar2img is not None:
            img2lidar = torch.linalg.inv_ex(lidar2img)[0]  # inv_ex: no host-side error check
            parts.append(self._img_tokens(img_feat.float(), lidar2img, img2lidar, img_hw))
        memory = torch.cat([p[0] for p in parts], 1)
        memory_pos = torch.cat([p[1] for p in parts], 1)
        if len(parts) == 1:
            key_lines = parts[0][2]
        else:  # BEV lines (H*W, 3) broadcast over the batch, then camera rays (B, N*h*w, 3)
            key_lines = tuple(
                torch.cat([bev.expand(B, -1, -1), cam], dim=1) for bev, cam in zip(parts[0][2], parts[1][2]))

        ref = self.reference_points.weight.clamp(0, 1)[None].expand(B, -1, -1)
        attn_mask, pad = None, 0
        if dn is not None:
            ref, attn_mask, pad = torch.cat([dn.ref_points, ref], 1), dn.attn_mask, dn.pad_size
        query_pos = self._query_pos(ref, lidar2img, img2lidar, img_hw)
        # Query points of the bias: the (un-refined, CMT has no iterative refinement) reference points in
        # metres, shared by all layers and not detached, so the bias also trains the reference points.
        ref_m = denormalize_points(ref, self.pc_range)
        dec = self.transformer(memory, memory_pos, query_pos, ref_m, key_lines, attn_mask)  # (L, B, Q, C)
        return self._decode(self.task_head(dec), ref, pad)

    def _decode(self, preds: Dict[str, Tensor], ref: Tensor, pad: int) -> Dict[str, Tensor]:
        """Box codes from branch outputs; centre/height are offsets to the reference point in logit space."""
        ref_logit = inverse_sigmoid(ref)
        rng = self.pc_range
        center = (preds['center'] + ref_logit[..., :2]).sigmoid() * (rng[3:5] - rng[:2]) + rng[:2]
        height = (preds['height'] + ref_logit[..., 2:3]).sigmoid() * (rng[5] - rng[2]) + rng[2]
        bbox = torch.cat([center, height, preds['dim'], preds['rot'], preds['vel']], dim=-1)
        cls = preds['cls_logits']
        out = dict(cls_scores=cls[:, :, pad:], bbox_preds=bbox[:, :, pad:])
        if pad:
            out.update(dn_cls_scores=cls[:, :, :pad], dn_bbox_preds=bbox[:, :, :pad])
        return out

    # ------------------------------------------------------------------ training
    def loss(self, bev_feat, img_feat, batch_data_samples, img_hw=None) -> Dict[str, Tensor]:
        """Matching + DN losses of every decoder layer: ``loss_cls``, ``loss_bbox`` (last layer),
        ``d{i}.loss_*`` (earlier layers), ``dn_loss_*`` / ``d{i}.dn_loss_*`` when ``with_dn``."""
        if self.assigner is None:
            raise ValueError('CmtHead.loss needs train_cfg.pts.assigner in the model config')
        metas = [ds.metainfo for ds in batch_data_samples]
        device = (bev_feat if bev_feat is not None else img_feat).device
        gts = [ds.gt_instances_3d for ds in batch_data_samples]
        gt_boxes = [gravity_center_boxes(g.bboxes_3d).to(device).float() for g in gts]
        gt_labels = [g.labels_3d.to(device).long() for g in gts]
        with torch.autocast(device.type, enabled=False):
            dn = None
            if self.with_dn:
                dn = build_dn_queries(gt_boxes, gt_labels, self.num_query, self.pc_range, self.num_classes,
                                      self.dn_cfg['scalar'], self.dn_cfg['noise_scale'], self.dn_cfg['noise_trans'],
                                      self.dn_cfg['split'])
            outs = self._forward(bev_feat, img_feat, metas, img_hw, dn)
            return self.loss_by_feat(outs, gt_boxes, gt_labels, dn)

    def loss_by_feat(self, outs: Dict[str, Tensor], gt_boxes: List[Tensor], gt_labels: List[Tensor],
                     dn: Optional[DNQueries]) -> Dict[str, Tensor]:
        """Losses of every decoder layer, evaluated for all layers at once: one call of each loss module for the
        matching queries and one for the DN queries, their elementwise losses summed per layer (see
        ``per_layer_mean``). The host waits for the GPU three times per call (the cost matrices of all layers copied
        at once, their matches copied back, the DN slots) plus the loss modules' own checks, and a distributed run
        makes one collective call for every normaliser it averages."""
        cls_all, bbox_all = outs['cls_scores'], outs['bbox_preds']  # (L, B, Q, K), (L, B, Q, 10)
        L, B, Q = cls_all.shape[:3]
        query_idx, gt_idx, num_pos = self._hungarian_matches(cls_all.detach(), bbox_all.detach(), gt_boxes, gt_labels)
        dn_targets = self._dn_targets(dn) if self.with_dn else None
        # normalisers (host numbers; the same for every layer): matching classification positives + bg_cls_weight x
        # negatives, matching L1 positives (per GPU unless sync_avg_factor), DN L1 the valid DN slots (all-reduced)
        cls_avg, pos_avg = num_pos + (B * Q - num_pos) * self.bg_cls_weight, float(num_pos)
        # one all-reduce for what is averaged over ranks: the DN count (as CMT; 0 without GT, so every rank joins) and,
        # with sync_avg_factor, the matching pair
        dn_num = dn_targets['num'] if dn_targets else 0.0
        to_average = ([dn_num] if self.with_dn else []) + ([cls_avg, pos_avg] if self.sync_avg_factor else [])
        averaged = self._mean_over_ranks(to_average, cls_all.device)
        if self.sync_avg_factor:
            cls_avg, pos_avg = averaged[-2:]
        loss_cls, loss_bbox = self._matching_losses(cls_all, bbox_all, gt_boxes, gt_labels, query_idx, gt_idx, cls_avg,
                                                    pos_avg)
        if self.with_dn and dn_targets is None:  # batch without GT: keep the keys, zero losses connected to the graph
            dn_cls = dn_bbox = (cls_all.flatten(1).sum(1) + bbox_all.flatten(1).sum(1)) * 0
        elif self.with_dn:
            dn_cls, dn_bbox = self._dn_losses(outs['dn_cls_scores'], outs['dn_bbox_preds'], dn_targets, averaged[0])
        per_layer = [loss_cls.unbind(0), loss_bbox.unbind(0)]
        names = ['loss_cls', 'loss_bbox']
        if self.with_dn:
            per_layer += [dn_cls.unbind(0), dn_bbox.unbind(0)]
            names += ['dn_loss_cls', 'dn_loss_bbox']
        losses = {}
        for layer in range(L):
            prefix = '' if layer == L - 1 else f'd{layer}.'
            losses.update((prefix + name, values[layer]) for name, values in zip(names, per_layer))
        return losses

    def _hungarian_matches(self, cls: Tensor, bbox: Tensor, gt_boxes: List[Tensor],
                           gt_labels: List[Tensor]) -> Tuple[Tensor, Tensor, int]:
        """cls (L, B, Q, K) logits, bbox (L, B, Q, 10), detached. Returns the matched pairs of all layers from CMT's
        Hungarian assignment of each (layer, sample) pair: query index into the flattened (L * B * Q), GT index into
        the batch's concatenated GT (int64, on the predictions' device, one host-to-device copy), and the number of
        matches per layer (each layer matches min(Q, G_b) queries of every sample: the same count in every layer).
        The costs of all layers of a sample are evaluated together (one set of cost kernels per sample)."""
        L, B, Q = cls.shape[:3]
        samples = [b for b in range(B) if gt_boxes[b].shape[0] and Q]
        costs = {b: self.assigner.cost_matrices(bbox[:, b], cls[:, b], gt_boxes[b], gt_labels[b]) for b in samples}
        pairs = [(layer, b) for layer in range(L) for b in samples]
        offsets = np.cumsum([0] + [int(g.shape[0]) for g in gt_boxes])
        rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for (layer, b), (r, c) in zip(pairs, linear_sum_assignments([costs[b][layer] for layer, b in pairs])):
            rows.append(r + (layer * B + b) * Q)
            cols.append(c + offsets[b])
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        flat = torch.from_numpy(np.concatenate([rows, cols])).to(cls.device)
        return flat[:rows.size], flat[rows.size:], rows.size // L

    @staticmethod
    def _mean_over_ranks(values: Sequence[float], device) -> List[float]:
        """Loss normalisers averaged over the ranks of a distributed run (mmdet's ``reduce_mean``: one wait for the
        GPU); as they are otherwise (host numbers: no wait)."""
        if values and torch.distributed.is_available() and torch.distributed.is_initialized():
            return reduce_mean(torch.tensor(values, dtype=torch.float32, device=device)).tolist()
        return [float(v) for v in values]

    def _box_loss(self, bbox: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
        """Elementwise weighted L1 (N, 10) over the targets that are finite (a zero-size GT box has log(0) = -inf in
        its target; its row gets weight 0 instead of being indexed out, which would wait for the GPU). Not wrapped in
        ``nan_to_num`` as CMT does (docs/quirks.md): a NaN prediction must surface (NonFiniteLossHook stops the run).
        """
        finite = torch.isfinite(targets).all(-1, keepdim=True)
        return self.loss_bbox(bbox, torch.where(finite, targets, 0.0), weights * finite, reduction_override='none')

    def _matching_losses(self, cls: Tensor, bbox: Tensor, gt_boxes: List[Tensor], gt_labels: List[Tensor],
                         query_idx: Tensor, gt_idx: Tensor, cls_avg: float, pos_avg: float) -> Tuple[Tensor, Tensor]:
        """cls (L, B, Q, K) logits, bbox (L, B, Q, 10); matched pairs query_idx (into L * B * Q) / gt_idx (into the
        batch's G GT boxes) -> focal and weighted L1 losses (L,) with CMT's normalisers."""
        L, B, Q, K = cls.shape
        gt_codes = encode_boxes(torch.cat(gt_boxes)) if gt_boxes else bbox.new_zeros(0, 10)
        gt_classes = torch.cat(gt_labels) if gt_labels else cls.new_zeros(0, dtype=torch.long)
        labels = cls.new_full((L * B * Q, ), self.num_classes, dtype=torch.long)
        labels[query_idx] = gt_classes[gt_idx]
        targets = bbox.new_zeros(L * B * Q, 10)
        targets[query_idx] = gt_codes[gt_idx].to(targets.dtype)
        weights = bbox.new_zeros(L * B * Q, 10)
        weights[query_idx] = self.code_weights.to(weights.dtype)
        loss_cls = self.loss_cls(cls.reshape(-1, K), labels, reduction_override='none')
        loss_bbox = self._box_loss(bbox.reshape(-1, 10), targets, weights)
        return per_layer_mean(loss_cls, L, max(cls_avg, 1.0)), per_layer_mean(loss_bbox, L, max(pos_avg, 1.0))

    def _dn_targets(self, dn: Optional[DNQueries]) -> Optional[dict]:
        """What the DN losses of every layer share: the valid slots (flattened index), their labels and box codes,
        their count ``num`` (averaged over ranks by the caller, as CMT) and the classification normaliser (expected
        positives ``num * pi/6 * split^3``). None without DN queries (no GT in the batch): the caller still joins
        the average of the count with 0, as every rank must make the same collective calls, or a rank without GT
        would pair its next one (DDP's gradient all-reduce) with the others' count."""
        if dn is None:
            return None
        idx = dn.valid.flatten().nonzero().squeeze(1)  # one wait for the GPU per step
        num = float(idx.numel())
        return dict(
            idx=idx,
            labels=dn.labels.flatten()[idx],
            codes=encode_boxes(dn.boxes.flatten(0, 1)[idx]),
            num=num,
            cls_avg=max(num * math.pi / 6 * self.dn_cfg['split']**3, 1.0))

    def _dn_losses(self, cls: Tensor, bbox: Tensor, dn_targets: dict, num_avg: float) -> Tuple[Tensor, Tensor]:
        """cls (L, B, P, K), bbox (L, B, P, 10) of the DN queries -> losses (L,): focal loss of the valid slots
        normalised by the expected positives, L1 over them normalised by the all-reduced count ``num_avg``, both
        times ``dn_weight``."""
        L, K = cls.shape[0], cls.shape[-1]
        idx, labels, codes = dn_targets['idx'], dn_targets['labels'], dn_targets['codes']
        cls, bbox = cls.flatten(1, 2)[:, idx].reshape(-1, K), bbox.flatten(1, 2)[:, idx].reshape(-1, 10)
        loss_cls = self.loss_cls(cls, labels.repeat(L), reduction_override='none')
        loss_bbox = self._box_loss(bbox, codes.to(bbox.dtype).repeat(L, 1), self.code_weights.expand_as(bbox))
        w = self.dn_cfg['dn_weight']
        loss_cls = per_layer_mean(loss_cls, L, dn_targets['cls_avg'])
        loss_bbox = per_layer_mean(loss_bbox, L, max(num_avg, 1.0))
        return loss_cls * w, loss_bbox * w

    # ------------------------------------------------------------------ inference
    def predict(self, bev_feat, img_feat, batch_data_samples, img_hw=None) -> List[InstanceData]:
        """Top-k boxes of the last layer per sample: InstanceData(bboxes_3d LiDARInstance3DBoxes (K, 9),
        scores_3d (K,), labels_3d (K,))."""
        metas = [ds.metainfo for ds in batch_data_samples]
        outs = self.forward(bev_feat, img_feat, metas, img_hw)
        results = []
        for cls, bbox in zip(outs['cls_scores'][-1], outs['bbox_preds'][-1]):
            dec = self.bbox_coder.decode(cls, bbox)
            res = InstanceData()
            res.bboxes_3d = LiDARInstance3DBoxes(dec['bboxes'], box_dim=9, origin=(0.5, 0.5, 0.5))
            res.scores_3d = dec['scores']
            res.labels_3d = dec['labels']
            results.append(res)
        return results
