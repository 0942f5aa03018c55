"""Bad-input sweep (issue "fail fast, lose nothing"), rows 1 and 4-8 and 10: each bad input gives an early, short
message naming the file or config key and the fix (exit status 2 from the tools, before any Runner is built),
on copies of the synthetic set. Rows 2, 3 (NaN, SIGTERM): tests/engine/test_training_faults.py; row 9:
tests/utils/test_atomic_checkpoint.py."""
import os
import os.path as osp
import shutil

import pytest
import torch
from reliability_helpers import (DEMO, FULL, camera_file, config_file, copy_root, infos, lidar_file, load_config,
                                 truncate)


@pytest.fixture
def bad_root(synthetic_root, tmp_path):
    return copy_root(synthetic_root, tmp_path)


def _train(argv, capsys):
    from tools import train
    code = train.main(argv)
    return code, capsys.readouterr()


def _test(argv, capsys):
    from tools import test as tool  # tools/test.py (a plain `import test` may be the standard library's package)
    code = tool.main(argv)
    return code, capsys.readouterr()


# ---------------------------------------------------------------- row 1: dataset version
def test_real_config_on_mini_data_takes_the_info_version(synthetic_root, mmdet3d_scope):
    """The full-size config (v1.0-trainval in mmdet3d's dataset class) on v1.0-mini infos: the dataset reports
    the info file's version, and the pre-flight finds <root>/v1.0-mini."""
    from mmdet3d.registry import DATASETS
    from projects.mmdet3d_plugin.utils import check_dataset_versions
    cfg = load_config(synthetic_root, FULL)
    assert infos(synthetic_root) and osp.isdir(osp.join(synthetic_root, 'v1.0-mini'))
    check_dataset_versions(cfg)
    ds = DATASETS.build(dict(cfg.val_dataloader.dataset, pipeline=[]))
    assert ds.metainfo['version'] == 'v1.0-mini'


@pytest.mark.parametrize('override,key', [
    ('val_dataloader.dataset.metainfo.version=v1.0-trainval', 'val_dataloader.dataset.metainfo.version'),
    ('val_dataloader.dataset.type=NuScenesDataset', 'NuScenesDataset'),
    ('val_evaluator.version=v1.0-trainval', 'val_evaluator.version'),
])
def test_version_mismatch_fails_before_training(synthetic_root, tmp_path, capsys, override, key):
    cfg_file = config_file(tmp_path, load_config(synthetic_root))
    code, out = _train([cfg_file, '--work-dir', str(tmp_path / 'wd'), '--cfg-options', override], capsys)
    assert code == 2, out.err
    assert key in out.err and 'v1.0-mini' in out.err and 'v1.0-trainval' in out.err, out.err
    assert not osp.exists(tmp_path / 'wd')  # no Runner was built


def test_missing_version_tables_fail_in_train_and_test(bad_root, tmp_path, capsys):
    os.rename(osp.join(bad_root, 'v1.0-mini'), osp.join(bad_root, 'moved'))
    cfg_file = config_file(tmp_path, load_config(bad_root))
    code, out = _train([cfg_file, '--work-dir', str(tmp_path / 'wd')], capsys)
    assert code == 2 and osp.join(bad_root, 'v1.0-mini') in out.err and 'val_evaluator' in out.err, out.err
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': {}, 'meta': {}}, ckpt)
    code, out = _test([cfg_file, str(ckpt), '--work-dir', str(tmp_path / 'wd')], capsys)
    assert code == 2 and osp.join(bad_root, 'v1.0-mini') in out.err and 'test_evaluator' in out.err, out.err


def test_metric_with_no_boxes_still_checks_the_tables(bad_root, mmdet3d_scope, tmp_path):
    """Zero predicted boxes score 0 without the devkit; that must not hide a version whose tables are absent."""
    import mmengine

    from mmdet3d.registry import METRICS
    ann = osp.join(bad_root, 'nuscenes_infos_val.pkl')
    metric = METRICS.build(dict(type='NuScenesSplitMetric', data_root=bad_root, ann_file=ann, metric='bbox'))
    result = str(tmp_path / 'no_boxes.json')
    mmengine.dump(dict(results={info['token']: [] for info in infos(bad_root)}, meta={}), result)
    metric.version = 'v1.0-mini'  # what compute_metrics reads from dataset_meta; its tables exist
    assert metric._evaluate_single(result, classes=['car'])['pred_instances_3d_NuScenes/mAP'] == 0.0
    metric.version = 'v1.0-trainval'  # not in the set
    with pytest.raises(FileNotFoundError, match=osp.join(bad_root, 'v1.0-trainval')):
        metric._evaluate_single(result, classes=['car'])


# ---------------------------------------------------------------- rows 4, 5: corrupt / missing sensor files
def _val_dataset(root):
    from mmdet3d.registry import DATASETS
    return DATASETS.build(load_config(root).val_dataloader.dataset)


def test_truncated_lidar_file_is_named_with_its_sample(bad_root, mmdet3d_scope, tmp_path, capsys):
    info = infos(bad_root)[0]
    path = lidar_file(bad_root, info)
    truncate(path, osp.getsize(path) - 3)  # an odd byte count: numpy's "buffer size must be a multiple"
    with pytest.raises(ValueError) as err:
        _val_dataset(bad_root)[0]
    msg = str(err.value)
    assert path in msg and info['token'] in msg and 'create_data.py' in msg, msg
    code, out = _train([config_file(tmp_path, load_config(bad_root)), '--check-data'], capsys)
    assert code == 2 and path in out.err and info['token'] in out.err and 'truncated' in out.err, out.err


def test_truncated_camera_jpeg_is_named_with_its_sample(bad_root, mmdet3d_scope, tmp_path, capsys):
    info = infos(bad_root)[1]
    path = camera_file(bad_root, info, 'CAM_BACK')
    truncate(path, osp.getsize(path) // 3)
    with pytest.raises(ValueError) as err:
        _val_dataset(bad_root)[1]
    msg = str(err.value)
    assert path in msg and info['token'] in msg and 'truncated' in msg, msg
    code, out = _train([config_file(tmp_path, load_config(bad_root)), '--check-data'], capsys)
    assert code == 2 and path in out.err and info['token'] in out.err, out.err


def test_deleted_camera_jpeg_fails_before_training(bad_root, mmdet3d_scope, tmp_path, capsys):
    info = infos(bad_root, 'train')[-1]
    path = camera_file(bad_root, info, 'CAM_FRONT_LEFT')
    os.remove(path)
    cfg_file = config_file(tmp_path, load_config(bad_root))
    code, out = _train([cfg_file, '--work-dir', str(tmp_path / 'wd')], capsys)
    assert code == 2 and path in out.err and info['token'] in out.err and 'missing' in out.err, out.err
    assert not osp.exists(tmp_path / 'wd')
    with pytest.raises(FileNotFoundError, match=info['token']):  # the loader names it too
        from mmdet3d.registry import DATASETS
        cfg = load_config(bad_root)
        ds = DATASETS.build(dict(cfg.train_dataloader.dataset.dataset, pipeline=cfg.test_pipeline))
        ds[next(i for i in range(len(ds)) if ds.get_data_info(i)['token'] == info['token'])]


# ---------------------------------------------------------------- row 6: wrong data_root
def test_wrong_data_root_with_right_info_files(synthetic_root, bad_root, tmp_path, capsys):
    elsewhere = tmp_path / 'infos_only'
    elsewhere.mkdir()
    for name in os.listdir(bad_root):
        if name.endswith('.pkl'):
            shutil.copy(osp.join(bad_root, name), elsewhere / name)
    os.symlink(osp.join(bad_root, 'v1.0-mini'), elsewhere / 'v1.0-mini')
    cfg_file = config_file(tmp_path, load_config(str(elsewhere)))
    code, out = _train([cfg_file, '--work-dir', str(tmp_path / 'wd')], capsys)
    assert code == 2, out.err
    assert 'does not match the root the info file' in out.err and str(elsewhere) in out.err, out.err
    assert f"({synthetic_root!r}, as its sweep paths say)" in out.err, out.err  # where the infos were built


def test_sample_paths_match_the_dataset(synthetic_root, mmdet3d_scope):
    """The pre-flight joins paths without building the dataset: they must be the dataset's own."""
    from mmdet3d.registry import DATASETS
    from projects.mmdet3d_plugin.utils.sample_files_check import sample_paths
    cfg = load_config(synthetic_root)
    ds_cfg = cfg.val_dataloader.dataset
    dataset = DATASETS.build(dict(ds_cfg, pipeline=[]))
    raw = infos(synthetic_root)
    sweeps = 0
    for i in range(len(dataset)):
        data = dataset.get_data_info(i)
        sweeps += len(data.get('lidar_sweeps', []))
        want = [data['lidar_points']['lidar_path']] + \
            [s['lidar_points']['lidar_path'] for s in data.get('lidar_sweeps', [])] + \
            [img['img_path'] for img in data['images'].values()]
        got = [p for _, p, _ in sample_paths(ds_cfg, raw[i])]
        assert got == want
        assert all(osp.isfile(p) for p in got)
    assert sweeps > 0


def test_check_data_passes_on_good_data(synthetic_root, tmp_path, capsys):
    code, out = _train([config_file(tmp_path, load_config(synthetic_root)), '--check-data'], capsys)
    n = len(infos(synthetic_root, 'train')) + len(infos(synthetic_root, 'val'))
    assert code == 0 and 'data check passed' in out.out, out
    checked = int(out.out.split('data check passed: ')[1].split()[0])
    assert checked >= n * (1 + 6), (checked, n)  # LiDAR + 6 cameras per sample at least (plus sweeps)


# ---------------------------------------------------------------- row 7: truncated checkpoint
def test_truncated_checkpoint_to_test_and_resume(synthetic_root, tmp_path, capsys):
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.randn(256, 256)}, 'meta': {'seed': 5}}, ckpt)
    size = osp.getsize(ckpt) // 2
    truncate(ckpt, size)
    cfg_file = config_file(tmp_path, load_config(synthetic_root))
    for code, out in (_test([cfg_file, str(ckpt)], capsys),
                      _train(
                          [cfg_file, '--work-dir', str(tmp_path / 'wd'), '--resume',
                           str(ckpt)], capsys)):
        assert code == 2, out.err
        assert f'checkpoint {ckpt} ({size} bytes) is truncated' in out.err and 'use an earlier one' in out.err
        assert 'Traceback' not in out.err


# ---------------------------------------------------------------- row 8: testing never builds training data
@pytest.mark.slow
def test_test_tool_runs_without_training_data(bad_root, tmp_path, capsys):
    from mmdet3d.registry import MODELS
    for name in ('nuscenes_infos_train.pkl', 'nuscenes_dbinfos_train.pkl'):
        os.remove(osp.join(bad_root, name))
    cfg = load_config(bad_root)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    code, out = _test([config_file(tmp_path, cfg), str(ckpt), '--work-dir', str(tmp_path / 'wd')], capsys)
    assert code == 0, out.err[-3000:]  # before: GPUMemoryHook read runner.epoch, which built the training set
    assert 'pred_instances_3d_NuScenes/mAP' in out.out + out.err


# ---------------------------------------------------------------- row 10: dict values in --cfg-options
def test_cfg_options_dict_value(tmp_path, capsys):
    from tools import train
    want = dict(type='Pretrained', checkpoint='ckpts/x.pth', prefix='img_backbone.')
    for path in (DEMO, FULL):  # init_cfg None in the demo, a dict with other keys in the full config
        args = train.parse_args([
            path, '--cfg-options', "model.img_backbone.init_cfg=dict(type='Pretrained', checkpoint='ckpts/x.pth', "
            "prefix='img_backbone.')", 'train_cfg.max_epochs=3'
        ])
        cfg = train.build_config(args)
        assert dict(cfg.model.img_backbone.init_cfg) == want
        assert cfg.train_cfg.max_epochs == 3
    with pytest.raises(SystemExit) as exc:
        train.parse_args([DEMO, '--cfg-options', 'model.img_backbone.init_cfg=dict(type=Pretrained)'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert 'model.img_backbone.init_cfg' in err and 'Pretrained' in err and 'quotes' in err, err
