"""The CMT train pipeline on the synthetic set: boxes, points, images and lidar2img stay consistent through
GT paste, modality masking, global rot/scale/translate, BEV flips and the per-camera resize/crop/flip."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from pipeline_helpers import BASE_CFG, ROOT, load_cfg, pixel_class, visible_centres

SYNTHETIC_CFG = osp.join(ROOT, 'configs', '_base_', 'datasets', 'nuscenes_cmt_synthetic.py')  # 400x160


def _build(cfg_dataset):
    from mmdet3d.registry import DATASETS
    return DATASETS.build(copy.deepcopy(cfg_dataset))


def _check_sample(sample, class_names, img_hw, stats):
    """Project each GT box centre with the packed lidar2img into the packed images: the pixel must show the
    box's class colour; each box must contain LiDAR points. Accumulates counts in ``stats``."""
    from mmdet3d.structures.ops import box_np_ops
    ds = sample['data_samples']
    imgs = sample['inputs']['img'].numpy()  # (6, 3, H, W) uint8 BGR
    assert imgs.shape == (6, 3) + tuple(img_hw) and imgs.dtype == np.uint8
    l2i = ds.metainfo['lidar2img']
    assert len(l2i) == 6 and all(np.asarray(m).shape == (4, 4) for m in l2i)
    boxes = ds.gt_instances_3d.bboxes_3d
    labels = ds.gt_instances_3d.labels_3d.numpy()
    assert boxes.tensor.shape[1] == 9 and len(boxes) == len(labels) > 0
    dropped = ds.metainfo.get('dropped_modality')
    points = sample['inputs']['points'].numpy()
    if dropped == 'img':
        assert not imgs.any()
    if dropped == 'points':  # zeroed by ModalMask3D, then moved together by the global augmentation
        assert np.ptp(points, axis=0).max() == 0 and not points[:, 3:].any()
        return
    in_box = box_np_ops.points_in_rbbox(points[:, :3], boxes.numpy()[:, :7])
    stats['boxes'] += len(boxes)
    stats['boxes_with_points'] += int((in_box.sum(0) > 0).sum())
    if dropped == 'img':
        return
    corners = boxes.corners.numpy().astype(np.float64)
    centres = boxes.gravity_center.numpy().astype(np.float64)
    for v in range(6):
        img = imgs[v].transpose(1, 2, 0)
        for i, u, vv in visible_centres(corners, centres, np.asarray(l2i[v], np.float64), img_hw):
            stats['visible'] += 1
            stats['colour_ok'] += pixel_class(img[vv, u]) == class_names[labels[i]]


def _load(dataset, idx):
    """Run a pipeline without Pack3DDetInputs on one sample (what Det3DDataset.prepare_data does)."""
    info = copy.deepcopy(dataset.get_data_info(idx))
    info.update(box_type_3d=dataset.box_type_3d, box_mode_3d=dataset.box_mode_3d)
    return dataset.pipeline(info)


def _run(dataset, n, seed):
    np.random.seed(seed)
    torch.manual_seed(seed)
    return [dataset[i % len(dataset)] for i in range(n)]


def test_geometry_consistent_without_paste_small_images(synthetic_root, mmdet3d_scope):
    """The synthetic-set config (a child overriding final_dim and data_root); without GT paste / modality drop
    every visible box centre must land on its own class colour."""
    cfg = load_cfg(synthetic_root, SYNTHETIC_CFG)
    ds_cfg = cfg.train_dataloader.dataset.dataset
    ds_cfg.pipeline = [t for t in ds_cfg.pipeline if t['type'] not in ('UnifiedObjectSample', 'ModalMask3D')]
    dataset = _build(ds_cfg)
    stats = dict(boxes=0, boxes_with_points=0, visible=0, colour_ok=0)
    flows = set()
    for sample in _run(dataset, 8, seed=0):
        _check_sample(sample, cfg.class_names, (160, 400), stats)
        meta = sample['data_samples'].metainfo
        flows.add((meta['pcd_horizontal_flip'], meta['pcd_vertical_flip']))
        assert abs(meta['pcd_rotation_angle']) > 0 and meta['pcd_scale_factor'] != 1.0
    assert len(flows) >= 2  # flips actually exercised
    assert stats['visible'] >= 40, stats
    assert stats['colour_ok'] / stats['visible'] > 0.95, stats
    assert stats['boxes_with_points'] / stats['boxes'] > 0.97, stats


def test_full_train_pipeline_with_paste_and_mask(synthetic_root, mmdet3d_scope):
    cfg = load_cfg(synthetic_root)
    dataset = _build(cfg.train_dataloader.dataset.dataset)
    stats = dict(boxes=0, boxes_with_points=0, visible=0, colour_ok=0)
    drops = []
    for sample in _run(dataset, 6, seed=1):
        _check_sample(sample, cfg.class_names, (320, 800), stats)
        drops.append(sample['data_samples'].metainfo['dropped_modality'])
    assert None in drops
    assert stats['visible'] >= 30, stats
    assert stats['colour_ok'] / stats['visible'] > 0.8, stats
    assert stats['boxes_with_points'] / stats['boxes'] > 0.95, stats


def test_test_pipeline_is_deterministic(synthetic_root, mmdet3d_scope):
    cfg = load_cfg(synthetic_root)
    dataset = _build(cfg.val_dataloader.dataset)
    a, b = _run(dataset, 1, seed=0)[0], _run(dataset, 1, seed=5)[0]
    assert torch.equal(a['inputs']['img'], b['inputs']['img'])
    assert a['inputs']['img'].shape == (6, 3, 320, 800)
    # test resize 0.5, centred/bottom crop: lidar2img = P @ cam2img @ lidar2cam with P = [[.5,0,0],[0,.5,-130]]
    meta = a['data_samples'].metainfo
    p = np.array([[0.5, 0, 0, 0], [0, 0.5, -130, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    info = dataset.get_data_info(0)
    for v, cam in enumerate(info['images']):
        k = np.eye(4)
        k[:3, :3] = info['images'][cam]['cam2img']
        ref = p @ k @ np.asarray(info['images'][cam]['lidar2cam'])
        np.testing.assert_allclose(meta['lidar2img'][v], ref, rtol=1e-6, atol=1e-6)


def test_gt_paste_adds_points_and_crops(synthetic_root, mmdet3d_scope):
    from mmdet3d.datasets.transforms import ObjectSample
    from mmdet3d.registry import TRANSFORMS
    from mmdet3d.structures.ops import box_np_ops
    cfg = load_cfg(synthetic_root)
    ds_cfg = cfg.train_dataloader.dataset.dataset
    paste_cfg = next(t for t in ds_cfg.pipeline if t['type'] == 'UnifiedObjectSample')
    ds_cfg.pipeline = ds_cfg.pipeline[:ds_cfg.pipeline.index(paste_cfg)]  # loading only
    dataset = _build(ds_cfg)
    paste = TRANSFORMS.build(paste_cfg)
    assert isinstance(paste, ObjectSample)  # so DisableObjectSampleHook switches it off
    np.random.seed(2)
    pasted_ok = pasted_seen = kept_same = kept_seen = 0
    for idx in range(len(dataset)):
        before = _load(dataset, idx)
        n_ori = len(before['gt_bboxes_3d'])
        after = paste(copy.deepcopy(before))
        infos = paste.db_sampler._last_sampled
        boxes = after['gt_bboxes_3d']
        assert len(boxes) == n_ori + len(infos) > n_ori
        pts = after['points'].numpy()
        in_box = box_np_ops.points_in_rbbox(pts[:, :3], boxes.numpy()[:, :7])
        for k, rec in enumerate(infos):
            assert after['gt_labels_3d'][n_ori + k] == cfg.class_names.index(rec['name'])
            assert abs(in_box[:, n_ori + k].sum() - rec['num_points_in_gt']) <= max(1, 0.02 * rec['num_points_in_gt'])
        corners = boxes.corners.numpy().astype(np.float64)
        centres = boxes.gravity_center.numpy().astype(np.float64)
        for v in range(6):
            for i, u, vv in visible_centres(corners, centres, after['lidar2img'][v], (900, 1600)):
                new, old = after['img'][v][vv, u], before['img'][v][vv, u]
                if i >= n_ori and infos[i - n_ori]['image_path']:
                    pasted_seen += 1
                    pasted_ok += pixel_class(new) == cfg.class_names[after['gt_labels_3d'][i]]
                elif i < n_ori:
                    kept_seen += 1
                    kept_same += int(np.abs(new.astype(int) - old.astype(int)).max() <= 1)
    assert pasted_seen >= 10 and pasted_ok / pasted_seen > 0.85, (pasted_ok, pasted_seen)
    assert kept_seen >= 10 and kept_same / kept_seen > 0.95, (kept_same, kept_seen)
    paste.disabled = True
    sample = _load(dataset, 0)
    out = paste(copy.deepcopy(sample))
    assert len(out['gt_bboxes_3d']) == len(sample['gt_bboxes_3d']) and len(out['points']) == len(sample['points'])


def test_modal_mask(mmdet3d_scope):
    from mmdet3d.registry import TRANSFORMS
    from mmdet3d.structures import LiDARPoints

    def results():
        return dict(
            img=[np.full((4, 5, 3), 7, np.uint8) for _ in range(6)],
            points=LiDARPoints(torch.rand(50, 5) + 1, points_dim=5))

    out = TRANSFORMS.build(dict(type='ModalMask3D', mode='test', mask_modal='img'))(results())
    assert out['dropped_modality'] == 'img' and not any(i.any() for i in out['img']) and out['points'].tensor.all()
    out = TRANSFORMS.build(dict(type='ModalMask3D', mode='test', mask_modal='points'))(results())
    assert out['dropped_modality'] == 'points' and not out['points'].tensor.any() and len(out['points']) == 50
    assert all(i.all() for i in out['img'])
    out = TRANSFORMS.build(dict(type='ModalMask3D', mode='test'))(results())
    assert out['dropped_modality'] is None
    train = TRANSFORMS.build(dict(type='ModalMask3D', mode='train'))
    np.random.seed(0)
    drops = [train(results())['dropped_modality'] for _ in range(2000)]
    assert abs(drops.count('img') / 2000 - 0.25) < 0.04 and abs(drops.count('points') / 2000 - 0.25) < 0.04
    with pytest.raises(ValueError, match='mask_modal'):
        TRANSFORMS.build(dict(type='ModalMask3D', mode='test', mask_modal='lidar'))


def test_cbgs_resamples_a_rare_class(synthetic_root, mmdet3d_scope, tmp_path):
    """One train sample keeps the only 'bus' boxes: CBGS must repeat it int(D / C) times for that class."""
    import mmengine
    infos = mmengine.load(osp.join(synthetic_root, 'nuscenes_infos_train.pkl'))
    bus = infos['metainfo']['categories']['bus']
    keep = next(i for i, info in enumerate(infos['data_list'])
                if any(ins['bbox_label_3d'] == bus and ins['bbox_3d_isvalid'] for ins in info['instances']))
    for i, info in enumerate(infos['data_list']):
        if i != keep:
            info['instances'] = [ins for ins in info['instances'] if ins['bbox_label_3d'] != bus]
    mmengine.dump(infos, str(tmp_path / 'rare.pkl'))
    cfg = load_cfg(synthetic_root)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.dataset.ann_file = str(tmp_path / 'rare.pkl')
    ds_cfg.dataset.pipeline = []
    np.random.seed(0)
    cbgs = _build(ds_cfg)
    inner = cbgs.dataset
    cat_sets = [inner.get_cat_ids(i) for i in range(len(inner))]
    n_classes = len(cfg.class_names)
    total = sum(len(s) for s in cat_sets)  # D: (sample, class) pairs
    per_class = {c: [i for i, s in enumerate(cat_sets) if c in s] for c in range(n_classes)}
    expected_len = sum(int(len(idx) * (1.0 / n_classes) / (len(idx) / total)) for idx in per_class.values() if idx)
    assert len(cbgs) == expected_len
    rare = per_class[cfg.class_names.index('bus')]
    assert rare == [keep]
    counts = np.bincount(cbgs.sample_indices, minlength=len(inner))
    assert counts[keep] >= int(total / n_classes)
    assert counts[keep] / len(cbgs) > 1 / len(inner)  # oversampled vs. uniform


def test_disable_object_sample_hook_switches_paste_off(synthetic_root, mmdet3d_scope):
    """mmdet3d's DisableObjectSampleHook ("15e + 5e") finds UnifiedObjectSample inside the CBGS-wrapped set."""
    from types import SimpleNamespace

    from mmengine.logging import MMLogger

    from mmdet3d.engine.hooks import DisableObjectSampleHook
    cfg = load_cfg(synthetic_root)
    cbgs = _build(cfg.train_dataloader.dataset)
    paste = next(t for t in cbgs.dataset.pipeline.transforms if type(t).__name__ == 'UnifiedObjectSample')
    runner = SimpleNamespace(
        epoch=3,
        model=torch.nn.Linear(1, 1),
        logger=MMLogger.get_current_instance(),
        train_dataloader=SimpleNamespace(dataset=cbgs, persistent_workers=False))
    hook = DisableObjectSampleHook(disable_after_epoch=3)
    assert not paste.disabled
    hook.before_train_epoch(runner)
    assert paste.disabled


def test_checked_point_loaders_name_bad_files(tmp_path, mmdet3d_scope):
    from mmdet3d.registry import TRANSFORMS
    loader = TRANSFORMS.build(dict(type='LoadPointsFromFileChecked', coord_type='LIDAR', load_dim=5, use_dim=5))
    bad = tmp_path / 'bad.pcd.bin'
    bad.write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(ValueError, match=r'bad.pcd.bin.*corrupt.*create_data.py'):
        loader(dict(lidar_points=dict(lidar_path=str(bad))))
    with pytest.raises(FileNotFoundError, match=r'gone.pcd.bin.*missing.*create_data.py'):
        loader(dict(lidar_points=dict(lidar_path=str(tmp_path / 'gone.pcd.bin'))))
    good = tmp_path / 'good.pcd.bin'
    pts = np.random.default_rng(0).normal(size=(11, 5)).astype(np.float32)
    pts.tofile(good)
    out = loader(dict(lidar_points=dict(lidar_path=str(good))))['points'].tensor.numpy()
    np.testing.assert_array_equal(out, pts)


def test_multi_sweeps_loader_as_cmt(tmp_path, mmdet3d_scope):
    """CMT's configs give LoadPointsFromMultiSweeps only sweeps_num/use_dim, i.e. pad_empty_sweeps=False and
    remove_close=False: a frame without sweeps keeps just its own points, and sweep points within 1 m of the
    sensor stay."""
    from mmdet3d.registry import TRANSFORMS
    from mmdet3d.structures import LiDARPoints
    cfg = Config.fromfile(BASE_CFG)
    loader = TRANSFORMS.build(next(t for t in cfg.load_points if 'MultiSweeps' in t['type']))
    rng = np.random.default_rng(0)
    key = rng.uniform(-40, 40, (50, 5)).astype(np.float32)

    out = loader(dict(points=LiDARPoints(key.copy(), points_dim=5), timestamp=10.0))
    assert len(out['points']) == 50  # no padding with copies of the frame
    np.testing.assert_array_equal(out['points'].tensor[:, :4].numpy(), key[:, :4])

    sweep = np.concatenate([rng.uniform(-0.9, 0.9, (4, 5)), rng.uniform(5, 30, (6, 5))]).astype(np.float32)
    path = tmp_path / 'sweep.bin'
    sweep.tofile(str(path))
    info = dict(lidar_points=dict(lidar_path=str(path), lidar2sensor=np.eye(4).tolist()), timestamp=9.95)
    out = loader(dict(points=LiDARPoints(key.copy(), points_dim=5), timestamp=10.0, lidar_sweeps=[info]))
    pts = out['points'].tensor.numpy()
    assert len(pts) == 60  # the 4 close sweep points are kept
    np.testing.assert_allclose(pts[50:, :3], sweep[:, :3])
    np.testing.assert_allclose(pts[50:, 4], 0.05, atol=1e-5)  # time lag of the sweep
