# Learning proof on the synthetic set: the demo fusion model (a little wider: 0.8 m pillars, 64x64 BEV tokens,
# 200 queries, 3 decoder layers) trained WITHOUT augmentation on the training scenes and scored by the
# official devkit on those same training scenes (NuScenesSplitMetric, eval_set='mini_train'). It shows that
# the whole pipeline (data, bias attention, head, losses, coder, metric) can fit data; it is not a
# generalisation result. Meant for a GPU (`tools/train.py ... --cfg-options model.pts_bbox_head.bias_mode=...`).
# Scored after every (CBGS) epoch; training stops at the first score with devkit mAP >= 0.9 (EarlyStoppingHook's
# stopping_threshold), and a checkpoint is kept every epoch so that `--resume` continues an interrupted run.
_base_ = ['./cmt_demo_fusion_pillar_r18.py']

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
pillar_size = [0.8, 0.8, 8.0]
max_epochs = 30
map_target = 0.9
lr = 5e-4

model = dict(
    data_preprocessor=dict(voxel_layer=dict(voxel_size=pillar_size, max_voxels=(16384, 16384))),
    pts_voxel_encoder=dict(voxel_size=pillar_size),
    pts_middle_encoder=dict(output_shape=[128, 128]),
    pts_bbox_head=dict(num_query=200, transformer=dict(decoder=dict(num_layers=3)), bbox_coder=dict(max_num=200)))

# No augmentation, no GT paste, no modality dropout: the same view of each sample every epoch.
_data_root = _base_.data_root
_steps = {t['type']: t for t in _base_.train_pipeline}
train_pipeline = _base_.load_points + _base_.load_images + [
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    _steps['PointsRangeFilter'],
    _steps['ObjectRangeFilter'],
    _steps['ObjectNameFilter'],
    dict(_steps['ResizeCropFlipImage'], training=False),
    _steps['Pack3DDetInputs'],
]
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True, dataset=dict(dataset=dict(pipeline=train_pipeline)))
# Score the training scenes with the official devkit.
val_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True, dataset=dict(ann_file='nuscenes_infos_train.pkl'))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='NuScenesSplitMetric', eval_set='mini_train', ann_file=_data_root + 'nuscenes_infos_train.pkl')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min_ratio=1e-3,
        begin=0,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=1, max_keep_ckpts=1))
custom_hooks = [
    dict(type='GPUMemoryHook'),
    dict(type='IterSeedHook'),
    # patience / min_delta make the plateau rule inert: only the threshold stops the run early
    dict(
        type='EarlyStoppingHook',
        monitor='NuScenes metric/pred_instances_3d_NuScenes/mAP',
        rule='greater',
        stopping_threshold=map_target,
        patience=10**6,
        min_delta=0.0),
]
