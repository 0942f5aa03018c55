"""Look at a dataset after the data pipeline, as the model gets it (as mmdet3d's tools/misc/browse_dataset.py, but
writing images, no display): per sample a BEV picture of the points and GT boxes and a 2x3 tile of the camera images
with the GT boxes projected through each view's (augmented) ``lidar2img``.

    python tools/misc/browse_dataset.py CONFIG --output-dir DIR [--split train|val|test] [--aug] [--num 5]
        [--cfg-options k=v ...]

Works on real nuScenes and on the synthetic set (``--cfg-options`` to point a config at it, or the demo configs).
Without ``--aug`` the train split runs the config's test pipeline plus GT loading (no augmentation), as in mmdet3d;
with ``--aug`` it runs the training pipeline itself (GT paste, global rotation/scale/flip, image resize/crop/flip,
modality masking), so each run draws a different augmentation.
"""
import argparse
import copy
import os
import os.path as osp
import sys

import numpy as np

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.mmdet3d_plugin.utils.cfg_options import CfgOptionsAction, load_config

WRAPPERS = ('CBGSDataset', 'ClassBalancedDataset', 'RepeatDataset')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('--output-dir', required=True, help='where the pictures go')
    p.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    p.add_argument('--aug', action='store_true', help='train split: run the training pipeline with augmentation')
    p.add_argument('--num', type=int, default=5, help='number of samples (from the first)')
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, help='config overrides, as in tools/train.py')
    return p.parse_args(argv)


def browse_dataset_cfg(cfg, split: str, aug: bool) -> dict:
    """The ``split`` dataset config (wrappers removed) with a pipeline that loads and packs the GT boxes."""
    ds = copy.deepcopy(cfg[f'{split}_dataloader']['dataset'])
    while ds.get('type') in WRAPPERS:
        ds = ds['dataset']
    train = list(cfg.train_pipeline)
    if split == 'train' and aug:
        return ds
    pipeline = copy.deepcopy(list(cfg.test_pipeline))
    types = [t['type'] for t in pipeline]
    load_ann = next((t for t in train if t['type'] == 'LoadAnnotations3D'), None)
    pack = next((t for t in train if t['type'] == 'Pack3DDetInputs'), None)
    if load_ann is None or pack is None or 'Pack3DDetInputs' not in types:
        raise ValueError('the config\'s train_pipeline needs LoadAnnotations3D and Pack3DDetInputs, and its '
                         'test_pipeline Pack3DDetInputs')
    last_load = max(i for i, t in enumerate(types) if t.startswith('Load') or t == 'AddLidar2Img')
    pipeline.insert(last_load + 1, copy.deepcopy(load_ann))
    pipeline[types.index('Pack3DDetInputs') + 1] = copy.deepcopy(pack)
    ds['pipeline'] = pipeline
    ds['test_mode'] = False  # so that the dataset hands the annotations to LoadAnnotations3D
    ds['filter_empty_gt'] = False
    return ds


def tile(images, cols: int = 3) -> np.ndarray:
    """Equal-size (H, W, 3) images -> one (rows*H, cols*W, 3) mosaic (blank cells white)."""
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    out = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * h:r * h + img.shape[0], c * w:c * w + img.shape[1]] = img[:h, :w]
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.registry import init_default_scope

    import projects.mmdet3d_plugin  # noqa: F401
    from mmdet3d.registry import DATASETS
    from projects.mmdet3d_plugin.utils.result_pictures import extent_of
    from projects.mmdet3d_plugin.utils.visualization import render_bev, render_camera, save_rgb
    try:
        cfg = load_config(args.config, args.cfg_options)
        init_default_scope('mmdet3d')
        dataset = DATASETS.build(browse_dataset_cfg(cfg, args.split, args.aug))
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f'browse_dataset.py: error: {e}', file=sys.stderr)
        return 2
    os.makedirs(args.output_dir, exist_ok=True)
    extent = extent_of(cfg)
    classes = dataset.metainfo['classes']
    for i in range(min(args.num, len(dataset))):
        item = dataset[i]
        sample = item['data_samples']
        gt = sample.gt_instances_3d
        boxes, labels = gt.bboxes_3d.tensor.numpy(), gt.labels_3d.numpy()
        keep = labels >= 0
        boxes, labels = boxes[keep], labels[keep]
        points = item['inputs']['points'].numpy() if 'points' in item['inputs'] else None
        token = sample.metainfo.get('token', str(i))
        counts = ', '.join(f'{(labels == c).sum()} {name}' for c, name in enumerate(classes) if (labels == c).any())
        title = (f'{args.split} sample {i} ({token}) after the {"augmented " if args.aug else ""}pipeline\n'
                 f'{len(boxes)} GT boxes: {counts or "none"}')
        stem = osp.join(args.output_dir, f'{i:04d}_{str(token)[:8]}')
        save_rgb(stem + '_bev.png', render_bev(points, boxes, extent=extent, title=title))
        written = [stem + '_bev.png']
        if 'img' in item['inputs']:
            imgs = item['inputs']['img'].numpy()  # (V, 3, H, W) BGR as the pipeline keeps it
            l2i = sample.metainfo['lidar2img']
            names = [osp.basename(osp.dirname(p)) for p in sample.metainfo.get('img_path', [])] or \
                [f'view {v}' for v in range(len(imgs))]
            views = [
                render_camera(
                    np.ascontiguousarray(img.transpose(1, 2, 0)[..., ::-1]), np.asarray(m), boxes, title=name)
                for img, m, name in zip(imgs, l2i, names)
            ]
            save_rgb(stem + '_cameras.png', tile(views))
            written.append(stem + '_cameras.png')
        print(f'{title.replace(chr(10), ": ")} -> {", ".join(written)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
