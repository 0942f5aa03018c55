# nuScenes for CMT fusion (LiDAR + 6 cameras, 800x320 images), mmdet3d 1.x.
#
# Data: `python tools/create_data.py nuscenes --root-path data/nuscenes --out-dir data/nuscenes` (real) or
# `python tools/create_data.py synthetic --out data/nuscenes-synthetic` (synthetic, same files and format).
#
# Image normalisation and padding are NOT in the pipeline: the model's Det3DDataPreprocessor does them
# (mean=[103.530, 116.280, 123.675], std=[57.375, 57.120, 58.395], bgr_to_rgb=False, pad_size_divisor=32).
# The pipeline keeps `img` as a list of HxWx3 uint8 BGR arrays; Pack3DDetInputs stacks it to (6, 3, H, W) and
# puts the per-camera 4x4 `lidar2img` (= cam2img @ lidar2cam, updated by every augmentation) in metainfo.
#
# Overriding sizes or the root from a child config: module-level values here are already substituted into the
# pipelines/dataloaders, and lists are replaced rather than merged, so a child rebuilds the pipelines from
# `_base_.train_pipeline` / `_base_.test_pipeline` and re-sets the dataloaders and evaluators.
# `nuscenes_cmt_synthetic.py` (next to this file) is the worked example: data/nuscenes-synthetic/, 400x160 images.
# mmdet3d's NuScenesDataset with the version (v1.0-mini / v1.0-trainval) taken from the info files
dataset_type = 'CmtNuScenesDataset'
data_root = 'data/nuscenes/'
class_names = [
    'car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle', 'bicycle', 'pedestrian',
    'traffic_cone'
]
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
num_sweeps = 10
input_modality = dict(use_lidar=True, use_camera=True)
backend_args = None
camera_names = ['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT', 'CAM_BACK_RIGHT']
data_prefix = dict(
    pts='samples/LIDAR_TOP',
    sweeps='sweeps/LIDAR_TOP',
    CAM_FRONT='samples/CAM_FRONT',
    CAM_FRONT_RIGHT='samples/CAM_FRONT_RIGHT',
    CAM_FRONT_LEFT='samples/CAM_FRONT_LEFT',
    CAM_BACK='samples/CAM_BACK',
    CAM_BACK_LEFT='samples/CAM_BACK_LEFT',
    CAM_BACK_RIGHT='samples/CAM_BACK_RIGHT')
# CMT 800x320: resize 1600x900 by U(0.47, 0.625), crop 320x800 at the bottom, flip; test resize 0.5.
ida_aug_conf = dict(
    resize_lim=(0.47, 0.625),
    final_dim=(320, 800),
    bot_pct_lim=(0.0, 0.0),
    rot_lim=(0.0, 0.0),
    H=900,
    W=1600,
    rand_flip=True)
# Pack3DDetInputs' default meta keys plus what CMT's pipeline adds.
meta_keys = ('img_path', 'ori_shape', 'img_shape', 'lidar2img', 'cam2img', 'pad_shape', 'scale_factor', 'flip',
             'pcd_horizontal_flip', 'pcd_vertical_flip', 'box_mode_3d', 'box_type_3d', 'img_norm_cfg', 'num_pts_feats',
             'pcd_trans', 'sample_idx', 'pcd_scale_factor', 'pcd_rotation', 'pcd_rotation_angle', 'lidar_path',
             'transformation_3d_flow', 'ori_cam2img', 'lidar2cam', 'num_views', 'ego2global', 'token', 'img_aug_matrix',
             'pcd_affine', 'dropped_modality')

db_sampler = dict(
    type='UnifiedDataBaseSampler',
    data_root=data_root,
    info_path=data_root + 'nuscenes_dbinfos_train.pkl',
    rate=1.0,
    prepare=dict(
        filter_by_difficulty=[-1],
        filter_by_min_points=dict(
            car=5,
            truck=5,
            bus=5,
            trailer=5,
            construction_vehicle=5,
            traffic_cone=5,
            barrier=5,
            motorcycle=5,
            bicycle=5,
            pedestrian=5)),
    classes=class_names,
    sample_groups=dict(
        car=2,
        truck=3,
        construction_vehicle=7,
        bus=4,
        trailer=6,
        barrier=2,
        motorcycle=6,
        bicycle=6,
        pedestrian=2,
        traffic_cone=2),
    points_loader=dict(
        type='LoadPointsFromFileChecked',
        coord_type='LIDAR',
        load_dim=5,
        use_dim=[0, 1, 2, 3, 4],
        backend_args=backend_args),
    backend_args=backend_args)

# The *Checked loaders are mmdet3d's LoadPointsFromFile / LoadPointsFromMultiSweeps / LoadMultiViewImageFromFiles
# that name a missing or corrupt file and its sample token.
load_points = [
    dict(
        type='LoadPointsFromFileChecked',
        coord_type='LIDAR',
        load_dim=5,
        use_dim=[0, 1, 2, 3, 4],
        backend_args=backend_args),
    # CMT's configs leave mmdet3d's defaults: no padding of a sweep-less frame, sweep points near the ego kept
    dict(
        type='LoadPointsFromMultiSweepsChecked',
        sweeps_num=num_sweeps,
        use_dim=[0, 1, 2, 3, 4],
        pad_empty_sweeps=False,
        remove_close=False,
        backend_args=backend_args),
]
load_images = [
    dict(type='LoadMultiViewImageFromFilesChecked', to_float32=False, num_views=6, backend_args=backend_args),
    dict(type='AddLidar2Img'),
]
train_pipeline = load_points + load_images + [
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    dict(type='UnifiedObjectSample', sample_2d=True, mixup_rate=0.5, db_sampler=db_sampler),
    dict(type='ModalMask3D', mode='train'),
    dict(
        type='GlobalRotScaleTransAll',
        rot_range=[-0.3925 * 2, 0.3925 * 2],
        scale_ratio_range=[0.9, 1.1],
        translation_std=[0.5, 0.5, 0.5]),
    dict(type='CustomRandomFlip3D', flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ObjectNameFilter', classes=class_names),
    dict(type='PointShuffle'),
    dict(type='ResizeCropFlipImage', data_aug_conf=ida_aug_conf, training=True),
    dict(type='Pack3DDetInputs', keys=['points', 'img', 'gt_bboxes_3d', 'gt_labels_3d'], meta_keys=meta_keys),
]
test_pipeline = load_points + load_images + [
    dict(type='PointsRangeFilter', point_cloud_range=point_cloud_range),
    dict(type='ResizeCropFlipImage', data_aug_conf=ida_aug_conf, training=False),
    dict(type='Pack3DDetInputs', keys=['points', 'img'], meta_keys=meta_keys),
]

# use_valid_flag=False keeps boxes with num_lidar_pts > 0, as CMT's 0.x dataset did.
train_dataloader = dict(
    batch_size=4,
    num_workers=6,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CBGSDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='nuscenes_infos_train.pkl',
            pipeline=train_pipeline,
            metainfo=dict(classes=class_names),
            modality=input_modality,
            data_prefix=data_prefix,
            test_mode=False,
            use_valid_flag=False,
            box_type_3d='LiDAR',
            backend_args=backend_args)))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='nuscenes_infos_val.pkl',
        pipeline=test_pipeline,
        metainfo=dict(classes=class_names),
        modality=input_modality,
        data_prefix=data_prefix,
        test_mode=True,
        box_type_3d='LiDAR',
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='NuScenesSplitMetric',
    data_root=data_root,
    ann_file=data_root + 'nuscenes_infos_val.pkl',
    metric='bbox',
    modality=input_modality,
    backend_args=backend_args)
test_evaluator = val_evaluator
