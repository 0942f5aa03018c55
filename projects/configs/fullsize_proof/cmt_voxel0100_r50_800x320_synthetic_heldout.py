# Learning proof at full size: `cmt_voxel0100_r50_800x320_cbgs.py` unchanged in every model size (ResNet-50 at
# 800x320, voxel 0.1 m SparseEncoder, 900 queries, 6 decoder layers, bias_mode=auto) and in its data recipe
# (10 sweeps, unified GT paste, ModalMask3D, global/flip/image augmentation, CBGS), trained on the training
# scenes of a synthetic nuScenes-format set and scored by the official devkit on its held-out validation scenes.
#
# Data (50 scenes: 40 training scenes named from the official `train` split, 10 held-out scenes from `val`;
# v1.0-trainval, chosen by the generator from the scene count, read from the info files by the dataset/metric):
#   python tools/create_data.py synthetic --out data/nuscenes-synthetic-50 --scenes 50 --seed 0
# Train (one GPU; docs/benchmarks/fullsize_synthetic/ has the run and its curves):
#   python tools/train.py projects/configs/fullsize_proof/cmt_voxel0100_r50_800x320_synthetic_heldout.py
#
# What differs from the real config, and why:
#   * data_root: the synthetic set, with the same 800x320 image recipe;
#   * no pretrained image backbone (CMT's nuim_r50.pth is not distributed; the ResNet-50 starts from scratch);
#   * the schedule: CMT's cyclic shape (cosine up to lr * lr_peak_ratio over 40%, cosine down to lr * 1e-4,
#     beta1 0.9 -> 0.85/0.95*0.9 -> 0.9) compressed to `max_epochs` CBGS epochs of this small set, GT paste off
#     for the last epoch (CMT: 15e + 5e), the devkit score on the held-out scenes after every epoch.
_base_ = ['../fusion/cmt_voxel0100_r50_800x320_cbgs.py']

data_root = 'data/nuscenes-synthetic-50/'
max_epochs = 5
up_epochs = 0.4 * max_epochs
lr = _base_.lr
lr_peak_ratio = _base_.lr_peak_ratio


def _retarget(step):
    """A pipeline step whose GT database lives under this file's data_root."""
    step = dict(step)
    if step['type'] == 'UnifiedObjectSample':
        step['db_sampler'] = dict(
            step['db_sampler'], data_root=data_root, info_path=data_root + 'nuscenes_dbinfos_train.pkl')
    return step


train_pipeline = [_retarget(t) for t in _base_.train_pipeline]
test_pipeline = [_retarget(t) for t in _base_.test_pipeline]

model = dict(img_backbone=dict(init_cfg=None))

train_dataloader = dict(
    batch_size=4, num_workers=10, dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(batch_size=4, num_workers=6, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(data_root=data_root, ann_file=data_root + 'nuscenes_infos_val.pkl')
test_evaluator = val_evaluator

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
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=1, max_keep_ckpts=2))
custom_hooks = [
    dict(type='GPUMemoryHook'),
    dict(type='IterSeedHook'),
    dict(type='ObjectSampleSwitchHook', disable_after_epoch=max_epochs - 1),
]
