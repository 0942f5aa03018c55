# CMT fusion voxel0075 VoVNet-99 1600x640 with CMT's own forward, for checkpoints converted from CMT's release:
#   python tools/model_converters/convert_cmt_checkpoint.py \
#       voxel0075_vov_1600x640_epoch20.pth ckpts/cmt_voxel0075_converted.pth
#   python tools/test.py projects/configs/cmt_compat/cmt_voxel0075_vov_1600x640.py ckpts/cmt_voxel0075_converted.pth
# Same switches as cmt_voxel0100_r50_800x320.py; bev_encoding_range changes nothing here (the 1440-voxel grid
# covers pc_range exactly) and is set for clarity.
_base_ = ['../fusion/cmt_voxel0075_vov_1600x640_cbgs.py']

point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]

model = dict(
    img_backbone=dict(init_cfg=None),
    pts_bbox_head=dict(
        use_bias=False,
        bev_encoding_range=point_cloud_range,
        img_token_pixel='corner',
        transformer=dict(
            decoder=dict(layer_cfg=dict(cross_attn_dtype=None, cross_attn_cfg=dict(core_dtype='float16'))))))
