# Tiny LiDAR-only CMT (pillars) for CPU demos and tests on the synthetic set; see cmt_demo_fusion_pillar_r18.py.
#   attention path: --cfg-options model.pts_bbox_head.bias_mode=exact (default 'auto')
#                   | model.pts_bbox_head.use_bias=False
_base_ = ['./cmt_demo_fusion_pillar_r18.py']

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
input_modality = dict(use_lidar=True, use_camera=False)

model = dict(grid_mask=None, img_backbone=None, img_neck=None, pts_bbox_head=dict(use_img=False))

train_pipeline = _base_.load_points + [
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    dict(type='ObjectSample', db_sampler=dict(_base_.db_sampler, type='DataBaseSampler')),
    dict(
        type='GlobalRotScaleTrans',
        rot_range=[-0.785, 0.785],
        scale_ratio_range=[0.9, 1.1],
        translation_std=[0.5, 0.5, 0.5]),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=_base_.class_names),
    dict(type='PointShuffle'),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
]
test_pipeline = _base_.load_points + [
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='Pack3DDetInputs', keys=['points']),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline, modality=input_modality)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, modality=input_modality))
test_dataloader = val_dataloader
val_evaluator = dict(modality=input_modality)
test_evaluator = val_evaluator
