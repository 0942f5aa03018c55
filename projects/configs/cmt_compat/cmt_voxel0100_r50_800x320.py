# CMT fusion voxel0100 R50 800x320 with CMT's own forward, for checkpoints converted from CMT's release:
#   python tools/model_converters/convert_cmt_checkpoint.py \
#       voxel0100_r50_800x320_epoch20.pth ckpts/cmt_voxel0100_converted.pth
#   python tools/test.py projects/configs/cmt_compat/cmt_voxel0100_r50_800x320.py ckpts/cmt_voxel0100_converted.pth
# Differences from ../fusion/cmt_voxel0100_r50_800x320_cbgs.py (docs/quirks.md, "CMT's released checkpoints"):
#   - use_bias=False: plain cross-attention (CMT has no geometric bias, no bias_scale);
#   - bev_encoding_range=point_cloud_range: the BEV tokens' position encoding spreads the 128 cells over the 108 m
#     of pc_range as CMT does (quirk #4), instead of the true 0.8 m cells of the 1024-voxel grid;
#   - img_token_pixel='corner': image-token rays through the top-left pixel of each feature cell (CMT's _rv_pe);
#   - cross-attention projections in fp32 around an fp16 attention core (CMT's flash-attn), no autocast around it;
#   - no pretrained-backbone init (the converted checkpoint holds every weight).
_base_ = ['../fusion/cmt_voxel0100_r50_800x320_cbgs.py']

point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]

model = dict(
    img_backbone=dict(init_cfg=None),
    pts_bbox_head=dict(
        use_bias=False,
        bev_encoding_range=point_cloud_range,
        img_token_pixel='corner',
        transformer=dict(
            decoder=dict(layer_cfg=dict(cross_attn_dtype=None, cross_attn_cfg=dict(core_dtype='float16'))))))
