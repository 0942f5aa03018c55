# The CMT nuScenes dataset base, pointed at the synthetic set (`python tools/create_data.py synthetic
# --out data/nuscenes-synthetic`) with small images (400x160, half of CMT's 800x320) and light loaders.
# A config inheriting this can re-override `ida_aug_conf` / `data_root` with the same recipe as below.
_base_ = ['./nuscenes_cmt.py']

data_root = 'data/nuscenes-synthetic/'
ida_aug_conf = dict(_base_.ida_aug_conf, final_dim=(160, 400), resize_lim=(0.235, 0.3125))


def _retarget(step):
    """A pipeline step with this file's image size and GT-database location."""
    step = dict(step)
    if step['type'] == 'ResizeCropFlipImage':
        step['data_aug_conf'] = ida_aug_conf
    elif step['type'] == 'UnifiedObjectSample':
        step['db_sampler'] = dict(
            step['db_sampler'], data_root=data_root, info_path=data_root + 'nuscenes_dbinfos_train.pkl')
    return step


train_pipeline = [_retarget(t) for t in _base_.train_pipeline]
test_pipeline = [_retarget(t) for t in _base_.test_pipeline]

train_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(num_workers=2, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(data_root=data_root, ann_file=data_root + 'nuscenes_infos_val.pkl')
test_evaluator = val_evaluator
