"""Write BEV and camera pictures of GT and predicted boxes for samples of a dataset and a results file
(tools/misc/visualize_results.py and the demo)."""
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np

from .result_files import predictions_for, sample_view
from .visualization import render_bev, render_camera, save_rgb


def write_result_pictures(dataset,
                          results: Optional[Dict],
                          out_dir: str,
                          indices: Sequence[int] = (0, 1, 2),
                          score_thr: float = 0.3,
                          camera: str = 'CAM_FRONT',
                          camera_samples: int = 1,
                          extent: float = 51.2,
                          size_px: int = 800) -> Dict:
    """For each dataset index: ``bev_<i>_<token>.png`` (points, GT green, predictions with score >= score_thr
    red); for the first ``camera_samples`` of them also ``<camera>_<i>_<token>.png``. ``results`` from
    ``load_results`` (None: GT only).

    Returns dict(bev=[paths], camera=[paths], samples=[dict(index, token, gt, pred, pred_total, max_score)]).
    """
    import mmcv
    os.makedirs(out_dir, exist_ok=True)
    out = dict(bev=[], camera=[], samples=[])
    for n, i in enumerate(indices):
        view = sample_view(dataset, i)
        pred = predictions_for(results, view, score_thr) if results is not None else None
        name = f'{i:04d}_{(view["token"] or str(view["sample_idx"]))[:8]}'
        if pred is None:
            note = 'no predictions in the results file' if results is not None else 'GT only'
            pred_boxes, pred_scores = None, None
        else:
            best = 'none' if pred['max_score'] is None else f'{pred["max_score"]:.2f}'
            note = f'{len(pred["boxes"])} of {pred["total"]} predictions with score >= {score_thr:g} red (best {best})'
            pred_boxes, pred_scores = pred['boxes'], pred['scores']
        title = (f'sample {i} ({view["token"]}), {2 * extent:g} m square, 10 m grid\n'
                 f'{len(view["gt_boxes"])} GT boxes green, {note}')
        bev = render_bev(
            view['points'], view['gt_boxes'], pred_boxes, pred_scores, extent=extent, size_px=size_px, title=title)
        out['bev'].append(save_rgb(osp.join(out_dir, f'bev_{name}.png'), bev))
        if n < camera_samples and camera in view['cams']:
            cam = view['cams'][camera]
            img = mmcv.imread(cam['img_path'], channel_order='rgb')
            if img is None:
                raise FileNotFoundError(f'camera image {cam["img_path"]!r} cannot be read')
            pic = render_camera(
                img,
                cam['lidar2img'],
                view['gt_boxes'],
                pred_boxes,
                title=f'{camera}, sample {i}: GT green, predictions red')
            out['camera'].append(save_rgb(osp.join(out_dir, f'{camera}_{name}.png'), pic))
        out['samples'].append(
            dict(
                index=int(i),
                token=view['token'],
                gt=int(len(view['gt_boxes'])),
                pred=None if pred is None else int(len(pred['boxes'])),
                pred_total=None if pred is None else pred['total'],
                max_score=None if pred is None else pred['max_score']))
    return out


def extent_of(cfg, default: float = 51.2) -> float:
    """Half width of the BEV view: the largest |x|, |y| of the config's ``point_cloud_range``."""
    pcr = cfg.get('point_cloud_range')
    if not pcr:
        return default
    return float(np.max(np.abs(np.asarray(pcr, np.float64)[[0, 1, 3, 4]])))
