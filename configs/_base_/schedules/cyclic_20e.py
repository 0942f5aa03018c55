# CMT's cyclic schedule on mmengine: 20 epochs; lr rises by cosine to lr * lr_peak_ratio over the first 40%
# (epochs 0-8), then falls by cosine to lr * 1e-4; AdamW beta1 goes 0.9 -> 0.805 -> 0.9 (mmcv's cyclic momentum
# with target_ratio 0.85/0.95, written with mmengine's absolute eta_min). Model configs that change `lr` or
# `lr_peak_ratio` must redefine `param_scheduler` (mmengine evaluates these expressions once, here).
lr = 1.4e-4
lr_peak_ratio = 6  # CMT: 6 for the R50 fusion/LiDAR configs, 8 for the VoVNet ones
max_epochs = 20
up_epochs = 8  # 40% of 20

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=up_epochs, eta_min=lr * lr_peak_ratio, begin=0, end=up_epochs,
         by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - up_epochs, eta_min=lr * 1e-4, begin=up_epochs,
         end=max_epochs, by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=up_epochs, eta_min=0.9 * 0.85 / 0.95, begin=0, end=up_epochs,
         by_epoch=True, convert_to_iter_based=True),
    dict(type='CosineAnnealingMomentum', T_max=max_epochs - up_epochs, eta_min=0.9, begin=up_epochs,
         end=max_epochs, by_epoch=True, convert_to_iter_based=True),
]

# mmengine's EpochBasedTrainLoop that also resumes mid-epoch (from a SignalCheckpointHook checkpoint)
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# Linear LR scaling with --auto-scale-lr: CMT trained on 8 GPUs x 2 samples.
auto_scale_lr = dict(enable=False, base_batch_size=16)
