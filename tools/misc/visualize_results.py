"""Draw the detections of a results file: BEV pictures (LiDAR points, GT boxes green, predictions red) and camera
images with the boxes projected into them, for samples of the config's test (or val/train) set.

    python tools/misc/visualize_results.py CONFIG --result RESULTS --show-dir DIR [--split test] [--num 3]
        [--indices I ...] [--score-thr 0.3] [--camera CAM_FRONT] [--camera-samples 1] [--cfg-options k=v ...]

RESULTS is either the nuScenes results JSON that the metric writes (set ``test_evaluator.jsonfile_prefix=DIR``,
e.g. ``python tools/test.py CONFIG CKPT --cfg-options test_evaluator.jsonfile_prefix=work_dirs/res``; the file is
``work_dirs/res/pred_instances_3d/results_nusc.json``), or a pickle of predictions written by mmengine's
``DumpResults`` metric (list of dicts with ``pred_instances_3d`` and ``token`` / ``sample_idx``).
``tools/run_demo.py`` draws its pictures with the same code.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.mmdet3d_plugin.utils.cfg_options import CfgOptionsAction, load_config


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='the config whose dataset the results belong to')
    p.add_argument('--result', required=True, help='results file: nuScenes results .json or DumpResults .pkl')
    p.add_argument('--show-dir', required=True, help='where the pictures go')
    p.add_argument('--split', default='test', choices=['train', 'val', 'test'], help='which dataloader\'s dataset')
    p.add_argument('--num', type=int, default=3, help='draw the first NUM samples (see --indices)')
    p.add_argument('--indices', type=int, nargs='+', help='dataset indices to draw instead of the first --num')
    p.add_argument('--score-thr', type=float, default=0.3, help='draw predictions with at least this score')
    p.add_argument('--camera', default='CAM_FRONT', help='camera of the projected-box pictures')
    p.add_argument('--camera-samples', type=int, default=1, help='how many samples also get a camera picture')
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, help='config overrides, as in tools/train.py')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import projects.mmdet3d_plugin  # noqa: F401
    from projects.mmdet3d_plugin.utils.result_files import ResultFileError, build_info_dataset, load_results
    from projects.mmdet3d_plugin.utils.result_pictures import extent_of, write_result_pictures
    try:
        cfg = load_config(args.config, args.cfg_options)
        results = load_results(args.result)
        dataset = build_info_dataset(cfg, args.split)
        indices = args.indices if args.indices else list(range(min(args.num, len(dataset))))
        bad = [i for i in indices if not 0 <= i < len(dataset)]
        if bad:
            raise ValueError(f'--indices {bad} outside the {args.split} set of {len(dataset)} samples')
        out = write_result_pictures(
            dataset,
            results,
            args.show_dir,
            indices,
            score_thr=args.score_thr,
            camera=args.camera,
            camera_samples=args.camera_samples,
            extent=extent_of(cfg))
    except (FileNotFoundError, ResultFileError, ValueError, KeyError) as e:
        print(f'visualize_results.py: error: {e}', file=sys.stderr)
        return 2
    missing = [s['index'] for s in out['samples'] if s['pred'] is None]
    for s, path in zip(out['samples'], out['bev']):
        preds = 'no entry in the results' if s['pred'] is None else \
            f'{s["pred"]} of {s["pred_total"]} predictions drawn'
        print(f'sample {s["index"]} ({s["token"]}): {s["gt"]} GT boxes, {preds} -> {path}')
    for path in out['camera']:
        print(f'camera picture -> {path}')
    if missing and len(missing) == len(out['samples']):
        print(
            f'warning: the results file has no entry for any drawn sample: is {args.result} from the '
            f'{args.split} set of this config?',
            file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
