# A few iterations of the full-size proof config through the distributed path, e.g. 2 ranks sharing one GPU:
#   tools/dist_train.sh projects/configs/fullsize_proof/cmt_voxel0100_r50_dist_check.py 2 \
#       --cfg-options env_cfg.dist_cfg.backend=gloo
# then `--resume --cfg-options train_cfg.max_iters=12` continues from the iteration-8 checkpoint.
_base_ = ['./cmt_voxel0100_r50_800x320_synthetic_heldout.py']

train_dataloader = dict(batch_size=2, num_workers=2)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=8, val_interval=10**6)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(by_epoch=False, interval=4, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
