# Tiny camera-only CMT for CPU demos and tests on the synthetic set; see cmt_demo_fusion_pillar_r18.py.
#   attention path: --cfg-options model.pts_bbox_head.bias_mode=exact (default 'auto')
#                   | model.pts_bbox_head.use_bias=False
_base_ = ['./cmt_demo_fusion_pillar_r18.py']

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
input_modality = dict(use_lidar=False, use_camera=True)

model = dict(
    data_preprocessor=dict(voxel=False),
    grid_mask=None,
    pts_voxel_encoder=None,
    pts_middle_encoder=None,
    pts_backbone=None,
    pts_neck=None,
    pts_bbox_head=dict(use_bev=False))

train_pipeline = _base_.load_images + [
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=_base_.class_names),
    dict(type='ResizeCropFlipImage', data_aug_conf=_base_.ida_aug_conf, training=True),
    dict(type='Pack3DDetInputs', keys=['img', 'gt_bboxes_3d', 'gt_labels_3d'], meta_keys=_base_.meta_keys),
]
test_pipeline = _base_.load_images + [
    dict(type='ResizeCropFlipImage', data_aug_conf=_base_.ida_aug_conf, training=False),
    dict(type='Pack3DDetInputs', keys=['img'], meta_keys=_base_.meta_keys),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline, modality=input_modality)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, modality=input_modality))
test_dataloader = val_dataloader
val_evaluator = dict(modality=input_modality)
test_evaluator = val_evaluator
custom_hooks = [dict(type='GPUMemoryHook'), dict(type='IterSeedHook')]
