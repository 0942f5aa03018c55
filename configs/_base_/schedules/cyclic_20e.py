# CMT's cyclic schedule (mmcv 1.x `lr_config=dict(policy='cyclic', target_ratio=(lr_peak_ratio, 1e-4),
# cyclic_times=1, step_ratio_up=0.4)` + `momentum_config=dict(policy='cyclic', target_ratio=(0.85 / 0.95, 1))`) on
# mmengine: 20 epochs, iteration-based; every parameter group's lr rises by cosine from its own base lr (lr x
# lr_mult) to base x lr_peak_ratio over the first 40% (epochs 0-8), then falls by cosine to base x 1e-4; AdamW
# beta1 goes 0.9 -> 0.9 x 0.85/0.95 -> 0.9. The targets are *ratios* of each group's base value (`eta_min_ratio`):
# an absolute `eta_min` would be applied to every group alike and lift img_backbone (lr_mult 0.01) and img_neck
# (lr_mult 0.1) to the head's peak (docs/quirks.md #12). Model configs that change `lr_peak_ratio` must redefine
# `param_scheduler` (mmengine evaluates these expressions once, here); a changed `lr` needs nothing.
lr = 1.4e-4
lr_peak_ratio = 6  # CMT: 6 for the R50 fusion/LiDAR configs, 8 for the VoVNet ones
max_epochs = 20
up_epochs = 8  # 40% of 20

# MergedParamGroupsConstructor: mmengine's default constructor, with the per-parameter groups that a paramwise_cfg
# makes merged by equal settings (the same update; a 67 ms -> few ms AdamW step at full size, engine/).
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='MergedParamGroupsConstructor',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))

param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=up_epochs,
        eta_min_ratio=lr_peak_ratio,
        begin=0,
        end=up_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - up_epochs,
        eta_min_ratio=1e-4,
        begin=up_epochs,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingMomentum',
        T_max=up_epochs,
        eta_min_ratio=0.85 / 0.95,
        begin=0,
        end=up_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingMomentum',
        T_max=max_epochs - up_epochs,
        eta_min_ratio=1.0,
        begin=up_epochs,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
]

# mmengine's EpochBasedTrainLoop that also resumes mid-epoch (from a SignalCheckpointHook checkpoint)
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# Linear LR scaling with --auto-scale-lr: CMT trained on 8 GPUs x 2 samples.
auto_scale_lr = dict(enable=False, base_batch_size=16)
