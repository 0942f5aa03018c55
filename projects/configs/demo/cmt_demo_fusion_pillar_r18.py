# Tiny CMT fusion model for CPU demos and tests on the synthetic set (data/nuscenes-synthetic/, made by
# `python tools/create_data.py synthetic`): pillar LiDAR branch (sparse convolution cannot train on CPU),
# ResNet-18 with 16 base channels, 96x256 images, 100 queries, 2 decoder layers, 32x32 BEV tokens.
# Same head, bias attention and losses as the full configs.
#   attention path: --cfg-options model.pts_bbox_head.bias_mode=exact (default 'auto')
#                   | model.pts_bbox_head.use_bias=False
_base_ = ['../fusion/cmt_voxel0100_r50_800x320_cbgs.py']

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
pillar_size = [1.6, 1.6, 8.0]
embed_dims = 128

model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(
            max_num_points=20, voxel_size=pillar_size, max_voxels=(4096, 4096), point_cloud_range=point_cloud_range)),
    img_backbone=dict(depth=18, base_channels=16, with_cp=False, norm_eval=False, init_cfg=None),
    img_neck=dict(in_channels=[64, 128], out_channels=embed_dims),
    pts_voxel_encoder=dict(
        _delete_=True,
        type='PillarFeatureNet',
        in_channels=5,
        feat_channels=[32],
        with_distance=False,
        voxel_size=pillar_size,
        point_cloud_range=point_cloud_range,
        norm_cfg=dict(type='BN1d', eps=1e-3, momentum=0.01)),
    pts_middle_encoder=dict(_delete_=True, type='PointPillarsScatter', in_channels=32, output_shape=[64, 64]),
    pts_backbone=dict(in_channels=32, out_channels=[32, 64], layer_nums=[1, 1], layer_strides=[2, 2]),
    pts_neck=dict(in_channels=[32, 64], out_channels=[32, 32], upsample_strides=[1, 2]),
    pts_bbox_head=dict(
        in_channels=64,
        hidden_dim=embed_dims,
        num_query=100,
        pc_range=point_cloud_range,
        bev_range=point_cloud_range,
        depth_num=16,
        transformer=dict(
            decoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                    cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                    ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=256),
                    cross_attn_dtype=None))),
        separate_head=dict(head_conv=32),
        bbox_coder=dict(max_num=100)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))

# Data: the synthetic nuScenes-format set, 96x256 images (1600x900 resized by U(0.16, 0.2), bottom crop),
# objects and points inside +-51.2 m, batch 2, no worker processes.
data_root = 'data/nuscenes-synthetic/'
ida_aug_conf = dict(_base_.ida_aug_conf, resize_lim=(0.16, 0.2), final_dim=(96, 256))
db_sampler = dict(_base_.db_sampler, data_root=data_root, info_path=data_root + 'nuscenes_dbinfos_train.pkl')
pipeline_overrides = dict(
    ResizeCropFlipImage=dict(data_aug_conf=ida_aug_conf),
    UnifiedObjectSample=dict(db_sampler=db_sampler),
    PointsRangeFilter=dict(point_cloud_range=point_cloud_range),
    ObjectRangeFilter=dict(point_cloud_range=point_cloud_range))
train_pipeline = [dict(t, **pipeline_overrides.get(t['type'], {})) for t in _base_.train_pipeline]
test_pipeline = [dict(t, **pipeline_overrides.get(t['type'], {})) for t in _base_.test_pipeline]
# The dataset version (v1.0-mini for <= 10 synthetic scenes, else v1.0-trainval) comes from the info files
# (CmtNuScenesDataset), so the devkit evaluation reads the table set that was written.
metainfo = dict(classes=_base_.class_names)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline, metainfo=metainfo)))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline, metainfo=metainfo))
test_dataloader = val_dataloader
val_evaluator = dict(data_root=data_root, ann_file=data_root + 'nuscenes_infos_val.pkl')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1))
custom_hooks = [
    dict(type='GPUMemoryHook'),
    dict(type='IterSeedHook'),
    dict(type='ObjectSampleSwitchHook', disable_after_epoch=1),
]
