"""The configs under projects/configs: each loads, builds its model and, for the full-size (voxel) configs, runs
its image branch and head on CPU with a fake BEV map (sparse convolution has no CPU kernel); their geometry is
consistent; one attention-path knob on the head; --cfg-options reach the built config."""
import glob
import logging
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch
from cmt_test_utils import load_cfg
from mmengine.config import Config, DictAction

from mmdet3d.registry import MODELS
from mmdet3d.structures import LiDARInstance3DBoxes
from projects.mmdet3d_plugin.models.synthetic_inputs import synthetic_batch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'projects/configs/**/*.py'), recursive=True))
FULL = [c for c in CONFIGS if '/demo/' not in c]
SEED_CONFIG = osp.join(ROOT, 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')


def test_seed_config_exists():
    assert osp.isfile(SEED_CONFIG)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_loads(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    assert cfg.model.type, f'{path} defines no model type'
    assert 'projects.mmdet3d_plugin' in cfg.custom_imports['imports']
    assert cfg.default_scope == 'mmdet3d'


def test_cfg_options_reach_the_config():
    from tools import train
    args = train.parse_args([
        SEED_CONFIG,
        '--work-dir',
        '/tmp/x',
        '--cfg-options',
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
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/train.py'), SEED_CONFIG, '--work-dir',
        str(tmp_path / 'wd'), '--cfg-options', f'train_dataloader.dataset.dataset.data_root={missing}/',
        f'val_dataloader.dataset.data_root={missing}/'
    ],
                          capture_output=True,
                          text=True,
                          timeout=120,
                          cwd=ROOT)
    elapsed = time.time() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(missing) in proc.stderr
    assert 'tools/create_data.py' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert elapsed < 60, f'took {elapsed:.1f} s'


class _Collect(logging.Handler):
    """Keeps the messages logged through a logger."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_all_four_full_configs_exist():
    names = {osp.basename(c) for c in FULL}
    assert {
        'cmt_voxel0100_r50_800x320_cbgs.py', 'cmt_voxel0075_vov_1600x640_cbgs.py', 'cmt_lidar_voxel0075_cbgs.py',
        'cmt_camera_vov_1600x640_cbgs.py'
    } <= names


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_runs_head(path):
    cfg = load_cfg(path)
    cfg.model.pts_bbox_head.bias_mode = 'exact'
    model = MODELS.build(cfg.model).eval()
    head = model.pts_bbox_head
    layers = head.transformer.decoder.layers
    if '/cmt_compat/' in path:  # CMT's own forward: no geometric bias, fp16 attention core
        assert all(not layer.cross_attn.use_bias and layer.cross_attn.bias_scale is None for layer in layers)
        assert all(layer.cross_attn.core_dtype == torch.float16 and layer.cross_attn_dtype is None for layer in layers)
        assert head.img_token_pixel == 'corner' and head.bev_encoding_range.tolist() == head.pc_range.tolist()
    else:
        assert all(layer.cross_attn.use_bias and layer.cross_attn.bias_scale is not None for layer in layers)
        assert head.img_token_pixel == 'centre' and torch.equal(head.bev_encoding_range, head.bev_range)
    if path in FULL:
        assert head.num_query == 900 and len(layers) == 6 and head.hidden_dim == 256
        assert layers[0].cross_attn.num_heads == 8 and layers[0].ffn.layers[0][0].out_features == 1024
    # image branch + head on small inputs; the LiDAR branch is replaced by a random BEV map of the neck's width
    use_img, use_bev = head.use_img, head.use_bev
    batch = synthetic_batch(
        1, head.pc_range.tolist(), num_gt=0, num_cams=2, img_hw=(64, 160), with_points=False, with_img=use_img)
    samples = batch['data_samples']
    img_feat = img_hw = None
    with torch.no_grad():
        if use_img:
            imgs = torch.stack(batch['inputs']['img'])
            img_feat = model.extract_img_feat(imgs)
            img_hw = tuple(imgs.shape[-2:])
            assert img_feat.shape == (2, head.hidden_dim, 4, 10)  # stride 16
        bev = torch.randn(1, head.shared_conv.conv.in_channels, 8, 8) if use_bev else None
        results = head.predict(bev, img_feat, samples, img_hw)
    assert isinstance(results[0].bboxes_3d, LiDARInstance3DBoxes) and len(results[0].scores_3d) > 0


@pytest.mark.parametrize('path', [c for c in FULL if 'camera' not in c])
def test_voxel_grid_matches_sparse_shape(path):
    cfg = load_cfg(path).model
    layer = cfg.data_preprocessor.voxel_layer
    rng, size = layer.point_cloud_range, layer.voxel_size
    cells = [round((rng[3 + i] - rng[i]) / size[i]) for i in range(3)]
    sparse = cfg.pts_middle_encoder.sparse_shape  # (z + 1, y, x)
    assert cells[0] == sparse[2] and cells[1] == sparse[1] and cells[2] + 1 == sparse[0]
    assert list(cfg.pts_bbox_head.bev_range) == list(rng)


def test_missing_pretrained_checkpoint_names_path_and_key():
    cfg = load_cfg('projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    model = MODELS.build(cfg.model)
    with pytest.raises(FileNotFoundError, match=r"ckpts/nuim_r50\.pth.*model\.img_backbone\.init_cfg\.checkpoint"):
        model.init_weights()


@pytest.mark.parametrize('path', CONFIGS)
def test_one_bias_mode_knob_on_the_head(path):
    """Every config sets the attention path once, on the head; no layer config repeats it (the cmt_compat
    configs reproduce CMT's attention: the bias off, on the head too)."""
    cfg = load_cfg(path)
    assert cfg.model.pts_bbox_head.bias_mode == 'auto'
    assert cfg.model.pts_bbox_head.use_bias is ('/cmt_compat/' not in path)
    cross = cfg.model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_cfg
    assert 'bias_mode' not in cross and 'use_bias' not in cross


@pytest.mark.parametrize('option,mode,use_bias', [
    ('model.pts_bbox_head.bias_mode=svd', 'svd', True),
    ('model.pts_bbox_head.use_bias=False', 'auto', False),
])
def test_cfg_options_choose_the_path(option, mode, use_bias):
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = load_cfg('projects/configs/demo/cmt_demo_lidar_pillar.py')
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', option]).cfg_options)
    model = MODELS.build(cfg.model)
    layers = model.pts_bbox_head.transformer.decoder.layers
    assert [(layer.cross_attn.bias_mode, layer.cross_attn.use_bias) for layer in layers] == [(mode, use_bias)] * 2


def test_layer_level_bias_mode_is_replaced_by_the_head_with_a_warning():
    from mmengine.logging import MMLogger
    cfg = load_cfg('projects/configs/demo/cmt_demo_lidar_pillar.py')
    cfg.model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_cfg.bias_mode = 'svd'
    logger = MMLogger.get_current_instance()
    handler = _Collect()
    logger.addHandler(handler)
    try:
        model = MODELS.build(cfg.model)
    finally:
        logger.removeHandler(handler)
    assert [layer.cross_attn.bias_mode for layer in model.pts_bbox_head.transformer.decoder.layers] == ['auto'] * 2
    assert any("bias_mode='auto' replaces cross_attn_cfg.bias_mode='svd'" in m for m in handler.messages)


@pytest.mark.parametrize('path', CONFIGS)
def test_task_heads_keep_cmts_effective_init(path):
    """Every config keeps PyTorch's default init on the task head (CMT's init_weights never reached its
    ModuleList of task heads): the head's init_weights leaves those weights as constructed."""
    cfg = load_cfg(path)
    torch.manual_seed(0)
    head = MODELS.build(cfg.model.pts_bbox_head)
    assert head.task_head.init_mode == 'torch_default'
    before = {k: v.clone() for k, v in head.task_head.state_dict().items()}
    head.init_weights()
    assert all(torch.equal(before[k], v) for k, v in head.task_head.state_dict().items())
    assert not torch.equal(before['branches.cls_logits.3.bias'],
                           torch.full_like(before['branches.cls_logits.3.bias'], -2.19))
