"""CMT detector on mmdet3d 1.x: image branch + LiDAR branch -> CmtHead.

Inputs come from ``Det3DDataPreprocessor``: ``imgs`` (B, N, 3, H, W) normalised and padded, and (with
``voxel=True, voxel_type='hard'``) ``voxels`` = dict(voxels (M, P, 5), num_points (M,), coors (M, 4) =
(batch, z, y, x)). Either modality may be absent from the config (camera-only / LiDAR-only models). A sample whose
point cloud is empty (``ModalMask3D``) simply has no voxels and gets an all-zero BEV map.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from mmdet3d.models.detectors import MVXTwoStageDetector
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample
from ..utils.pretrained import check_pretrained_path
from ..utils.sparse_conv_precision import (CastWeights, call_in_dtype, resolve_sparse_conv_tf32, sparse_conv_tf32,
                                           sparse_conv_tf32_backward)


@MODELS.register_module()
class CmtDetector(MVXTwoStageDetector):
    """Cross Modal Transformer.

    Args:
        grid_mask (dict, optional): GridMask cfg applied to training images (CMT fusion:
            ``dict(type='GridMask', use_h=True, use_w=True, rotate=1, offset=False, ratio=0.5, mode=1, prob=0.7)``).
        sparse_conv_tf32 (bool, optional): TF32 tensor cores for spconv 2's fp32 sparse middle encoder
            (``models/utils/sparse_conv_precision.py``); None (default) follows ``torch.backends.cudnn.allow_tf32``,
            PyTorch's switch for dense convolutions (True by default). No effect with mmcv's sparse convolution.
        sparse_conv_fp16_inference (bool): in eval mode on CUDA, run the sparse middle encoder in fp16 (a cached fp16
            copy of its weights; its fp32 weights stay as they are) for inference speed. Default False: fp32, as CMT
            (its ``custom_fp16`` kept the middle encoder in fp32) and mmdet3d's ``SparseEncoder``. Training is not
            affected; the accuracy change is measured in ``docs/benchmarks/``.
        **kwargs: ``MVXTwoStageDetector`` arguments (img_backbone, img_neck, pts_voxel_encoder,
            pts_middle_encoder, pts_backbone, pts_neck, pts_bbox_head, train_cfg, test_cfg, data_preprocessor).
    """

    def __init__(self,
                 grid_mask: Optional[dict] = None,
                 sparse_conv_tf32: Optional[bool] = None,
                 sparse_conv_fp16_inference: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.grid_mask = MODELS.build(grid_mask) if grid_mask else None
        resolve_sparse_conv_tf32(sparse_conv_tf32)  # checks the value now
        self.sparse_conv_tf32 = sparse_conv_tf32
        if not isinstance(sparse_conv_fp16_inference, bool):
            raise TypeError('model.sparse_conv_fp16_inference must be True or False; got '
                            f'{sparse_conv_fp16_inference!r}')
        self.sparse_conv_fp16_inference = sparse_conv_fp16_inference
        self._fp16_middle_encoder = CastWeights(torch.float16)

    def init_weights(self) -> None:
        """Checks every ``Pretrained`` init_cfg path first, so a missing file names its config key."""
        for name, module in self.named_modules():
            check_pretrained_path(
                getattr(module, 'init_cfg', None), f'model.{name}.init_cfg' if name else 'model.init_cfg')
        super().init_weights()

    # ------------------------------------------------------------------ features
    def extract_img_feat(self, imgs: Optional[Tensor], *args) -> Optional[Tensor]:
        """imgs (B, N, 3, H, W) -> stride-16 features (B*N, C, h, w) (only the first neck level is used)."""
        if imgs is None or not self.with_img_backbone:
            return None
        if imgs.dim() == 5:
            imgs = imgs.flatten(0, 1)
        elif imgs.dim() != 4:
            raise ValueError(f'imgs must be (B, N, 3, H, W) or (B, 3, H, W), got {tuple(imgs.shape)}')
        if self.grid_mask is not None and self.training:
            imgs = self.grid_mask(imgs)
        feats = self.img_backbone(imgs)
        if self.with_img_neck:
            feats = self.img_neck(feats)
        return feats[0]

    def _grid_shape(self) -> Optional[Tuple[int, int, int]]:
        enc = self.pts_middle_encoder
        if hasattr(enc, 'sparse_shape'):
            return tuple(int(s) for s in enc.sparse_shape)
        if hasattr(enc, 'ny') and hasattr(enc, 'nx'):
            return (1, int(enc.ny), int(enc.nx))
        return None

    def extract_pts_feat(self, voxel_dict: Optional[dict], batch_size: int, *args) -> Optional[Tensor]:
        """Voxels -> BEV map (B, C, H, W). Voxel encoder, middle encoder and BEV backbone (SECOND) run in fp32
        (autocast off), as CMT's ``@force_fp32`` ``extract_pts_feat`` (the middle encoder in fp16 at CUDA inference
        with ``sparse_conv_fp16_inference``); the BEV neck runs under the caller's autocast (CMT's ``SECONDFPN``
        re-enables fp16 with its ``@auto_fp16``)."""
        if voxel_dict is None or not self.with_pts_backbone:
            return None
        coors = voxel_dict['coors']
        grid = self._grid_shape()
        if grid is not None and coors.numel():
            over = coors[:, 1:] >= coors.new_tensor(grid)
            if bool(over.any()):
                raise ValueError(
                    f'voxel coordinates (z, y, x) up to {coors[:, 1:].max(0).values.tolist()} exceed the middle '
                    f'encoder grid {list(grid)}: make data_preprocessor.voxel_layer.point_cloud_range cover exactly '
                    'model.pts_middle_encoder.sparse_shape (or output_shape) voxels')
        with torch.autocast(coors.device.type, enabled=False):
            feats = self.pts_voxel_encoder(voxel_dict['voxels'].float(), voxel_dict['num_points'], coors)
            if self.sparse_conv_fp16_inference and not self.training and feats.is_cuda:
                x = call_in_dtype(self.pts_middle_encoder, self._fp16_middle_encoder, feats, coors, batch_size)
            else:
                tf32 = resolve_sparse_conv_tf32(self.sparse_conv_tf32)
                with sparse_conv_tf32(tf32):
                    x = self.pts_middle_encoder(feats, coors, batch_size)
                x = sparse_conv_tf32_backward(x, tf32)  # spconv reads the flag again in the backward pass
            x = self.pts_backbone(x.float())
        if self.with_pts_neck:
            x = self.pts_neck(x)  # under the caller's autocast (CMT: SECONDFPN's own auto_fp16)
        return x[0]

    def extract_feat(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample]) -> Tuple:
        """-> bev_feat (B, C, H, W) | None, img_feat (B*N, C, h, w) | None, img_hw (H, W) | None."""
        imgs = batch_inputs_dict.get('imgs')
        img_feat = self.extract_img_feat(imgs)
        bev_feat = self.extract_pts_feat(batch_inputs_dict.get('voxels'), len(batch_data_samples))
        img_hw = tuple(imgs.shape[-2:]) if img_feat is not None else None
        return bev_feat, img_feat, img_hw

    # ------------------------------------------------------------------ modes
    def loss(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample], **kwargs) -> Dict[str, Tensor]:
        bev_feat, img_feat, img_hw = self.extract_feat(batch_inputs_dict, batch_data_samples)
        return self.pts_bbox_head.loss(bev_feat, img_feat, batch_data_samples, img_hw)

    def predict(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample],
                **kwargs) -> List[Det3DDataSample]:
        """Fills ``data_sample.pred_instances_3d`` (bboxes_3d, scores_3d, labels_3d)."""
        bev_feat, img_feat, img_hw = self.extract_feat(batch_inputs_dict, batch_data_samples)
        results = self.pts_bbox_head.predict(bev_feat, img_feat, batch_data_samples, img_hw)
        return self.add_pred_to_datasample(batch_data_samples, results)

    def _forward(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample], **kwargs) -> dict:
        bev_feat, img_feat, img_hw = self.extract_feat(batch_inputs_dict, batch_data_samples)
        return self.pts_bbox_head(bev_feat, img_feat, [ds.metainfo for ds in batch_data_samples], img_hw)
