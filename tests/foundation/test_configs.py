"""Every config under projects/configs loads, and --cfg-options reach the built config."""
import glob
import os.path as osp
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'projects', 'configs', '**', '*.py'), recursive=True))
SEED_CONFIG = osp.join(ROOT, 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')


def test_seed_config_exists():
    assert osp.isfile(SEED_CONFIG)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_loads(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type, f'{path} defines no model type'
    assert 'projects.mmdet3d_plugin' in cfg.custom_imports['imports']
    assert cfg.default_scope == 'mmdet3d'


def test_cfg_options_reach_the_config():
    from tools import train
    args = train.parse_args([
        SEED_CONFIG, '--work-dir', '/tmp/x', '--cfg-options',
        'train_cfg.max_epochs=3',
        'optim_wrapper.optimizer.lr=0.0005',
        'default_hooks.logger.interval=7',
        'optim_wrapper.optimizer.betas=(0.8,0.95)',
        'env_cfg.dist_cfg.backend=gloo',
        'model.data_preprocessor.mean=[1.5,2.5,3.5]',
        'model.img_backbone.out_indices=(1,3)',
        'train_dataloader.dataset.dataset.data_root=/some/where/',
    ])
    cfg = train.build_config(args)
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(5e-4)
    assert cfg.default_hooks.logger.interval == 7
    assert tuple(cfg.optim_wrapper.optimizer.betas) == (0.8, 0.95)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert list(cfg.model.data_preprocessor.mean) == [1.5, 2.5, 3.5]
    assert tuple(cfg.model.img_backbone.out_indices) == (1, 3)
    assert cfg.train_dataloader.dataset.dataset.data_root == '/some/where/'
    assert cfg.work_dir == '/tmp/x'


def test_amp_and_resume_flags(tmp_path):
    from tools import train
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'0')
    cfg = train.build_config(train.parse_args([SEED_CONFIG, '--amp', '--resume', str(ckpt)]))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    cfg = train.build_config(train.parse_args([SEED_CONFIG, '--resume']))
    assert cfg.resume is True and cfg.load_from is None
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        train.build_config(train.parse_args([SEED_CONFIG, '--resume', str(tmp_path / 'missing.pth')]))


def test_train_with_missing_data_root_fails_fast_and_clearly(tmp_path):
    missing = tmp_path / 'no-such-nuscenes'
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/train.py'), SEED_CONFIG, '--work-dir', str(tmp_path / 'wd'),
         '--cfg-options', f'train_dataloader.dataset.dataset.data_root={missing}/',
         f'val_dataloader.dataset.data_root={missing}/'],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    elapsed = time.time() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(missing) in proc.stderr
    assert 'tools/create_data.py' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert elapsed < 60, f'took {elapsed:.1f} s'
