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
from ..utils.cuda_graph import CudaGraphCache, autocast_dtype, graph_safe_autocast, graphs_apply
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
        cuda_graph (bool): at inference on CUDA (eval mode, no grad), replay the dense feature stages from CUDA
            graphs captured once per input shape and precision (``models/utils/cuda_graph.py``): the image branch
            (backbone + neck), launched on a side stream so that it runs on the GPU while the host drives the
            sparse LiDAR branch, and the BEV backbone + neck. The sparse middle encoder (a different voxel count per
            sample) stays eager. Off by default; ``--cfg-options model.cuda_graph=True`` (with
            ``model.pts_bbox_head.cuda_graph=True`` for the head). Training never uses it.
        **kwargs: ``MVXTwoStageDetector`` arguments (img_backbone, img_neck, pts_voxel_encoder,
            pts_middle_encoder, pts_backbone, pts_neck, pts_bbox_head, train_cfg, test_cfg, data_preprocessor).
    """

    def __init__(self,
                 grid_mask: Optional[dict] = None,
                 sparse_conv_tf32: Optional[bool] = None,
                 sparse_conv_fp16_inference: bool = False,
                 cuda_graph: bool = False,
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
        if not isinstance(cuda_graph, bool):
            raise TypeError(f'model.cuda_graph must be True or False; got {cuda_graph!r}')
        self._img_graphs = CudaGraphCache(self._img_branch) if cuda_graph else None
        self._bev_graphs = CudaGraphCache(self._bev_dense) if cuda_graph else None
        self._img_stream = None  # the side stream of the image graph (made on first use, on the model's device)

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
        if self._img_graphs is not None and graphs_apply(self, imgs):
            return self._img_graphs(imgs, autocast=autocast_dtype(imgs.device))['img_feat']
        return self._img_backbone_neck(imgs)

    def _img_backbone_neck(self, imgs: Tensor) -> Tensor:
        feats = self.img_backbone(imgs)
        if self.with_img_neck:
            feats = self.img_neck(feats)
        return feats[0]

    def _img_branch(self, imgs: Tensor, autocast: Optional[torch.dtype]) -> Dict[str, Tensor]:
        """The image graph's function: imgs (B*N, 3, H, W) -> img_feat (B*N, C, h, w) under the caller's autocast."""
        with graph_safe_autocast(imgs.device, autocast):
            return {'img_feat': self._img_backbone_neck(imgs)}

    def _launch_img_branch(self, imgs: Optional[Tensor]) -> Tuple[Optional[Tensor], Optional[torch.cuda.Stream]]:
        """At graphed inference, replays the image graph on a side stream and returns (img_feat, side stream)
        without waiting for it: the caller drives the LiDAR branch meanwhile, then waits with ``_join``. Elsewhere
        runs ``extract_img_feat`` and returns (img_feat, None)."""
        if self._img_graphs is None or not self.with_img_backbone or not graphs_apply(self, imgs):
            return self.extract_img_feat(imgs), None  # (a LiDAR-only model given images: None)
        main = torch.cuda.current_stream(imgs.device)
        if self._img_stream is None:
            self._img_stream = torch.cuda.Stream(imgs.device)
        side = self._img_stream
        side.wait_stream(main)  # imgs are written on the main stream
        with torch.cuda.stream(side):
            img_feat = self.extract_img_feat(imgs)
        imgs.record_stream(side)  # the side stream still reads imgs when the main stream frees them
        return img_feat, side

    @staticmethod
    def _join(img_feat: Optional[Tensor], side: Optional[torch.cuda.Stream]) -> Optional[Tensor]:
        """Makes the main stream wait for the side stream's image features."""
        if side is not None:
            main = torch.cuda.current_stream(img_feat.device)
            main.wait_stream(side)
            img_feat.record_stream(main)  # made on the side stream, read and freed on the main stream
        return img_feat

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
        caller_autocast = autocast_dtype(coors.device)  # the neck's precision
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
        if self._bev_graphs is not None and graphs_apply(self, x):
            return self._bev_graphs(x, autocast=caller_autocast)['bev_feat']
        return self._bev_dense(x, autocast=caller_autocast)['bev_feat']

    def _bev_dense(self, x: Tensor, autocast: Optional[torch.dtype]) -> Dict[str, Tensor]:
        """BEV backbone (fp32) + neck (under ``autocast``, the caller's): x (B, C*D, H, W) dense middle encoder output
        -> bev_feat (B, C', H', W'). The BEV graph's function."""
        with torch.autocast(x.device.type, enabled=False):
            x = self.pts_backbone(x.float())
        if self.with_pts_neck:
            with graph_safe_autocast(x[0].device, autocast):
                x = self.pts_neck(x)  # CMT: SECONDFPN's own auto_fp16
        return {'bev_feat': x[0]}

    def extract_feat(self, batch_inputs_dict: dict, batch_data_samples: List[Det3DDataSample]) -> Tuple:
        """-> bev_feat (B, C, H, W) | None, img_feat (B*N, C, h, w) | None, img_hw (H, W) | None."""
        imgs = batch_inputs_dict.get('imgs')
        img_feat, side = self._launch_img_branch(imgs)  # graphed inference: overlaps the LiDAR branch
        bev_feat = self.extract_pts_feat(batch_inputs_dict.get('voxels'), len(batch_data_samples))
        img_feat = self._join(img_feat, side)
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
