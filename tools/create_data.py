"""Prepare nuScenes data for CMT, or generate a synthetic nuScenes-format dataset.

  python tools/create_data.py nuscenes --root-path data/nuscenes --out-dir data/nuscenes --version v1.0-trainval
      mmdet3d's nuScenes converter + info updater -> {tag}_infos_{train,val}.pkl (mmdet3d 1.x v2 format) in
      --out-dir, then CMT's GT database ({tag}_gt_database/ with points .bin and image crops .png, and
      {tag}_dbinfos_train.pkl) in --out-dir. (mmdet3d's converter writes its 0.x infos to --root-path first.)
      Database paths are relative to --out-dir: keep --out-dir = --root-path for the shipped configs.

  python tools/create_data.py synthetic --out data/nuscenes-synthetic --scenes 10 --seed 0
      writes a synthetic set in the nuScenes v1.0 format (tables, LIDAR_TOP sweeps, six cameras), then runs the
      same preparation as `nuscenes` on it. Re-running with the same arguments on a finished set is a no-op;
      a non-empty --out without a finished set (or with other arguments) is refused unless --overwrite.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SPLIT_HELP = ('Scene names and split: with v1.0-mini (default for <= 10 scenes) train scenes take the official '
              'mini_train names and val scenes the mini_val names; with v1.0-trainval (default for > 10 scenes) '
              'the train / val names. Val scenes default to max(1, round(0.2 N)) (0 for N = 1).')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='dataset', required=True)
    nus = sub.add_parser('nuscenes', help='infos + CMT GT database for a nuScenes root')
    nus.add_argument('--root-path', required=True, help='nuScenes root (holds v1.0-*/, samples/, sweeps/)')
    nus.add_argument('--out-dir', default=None, help='where infos and the GT database go (default: root)')
    nus.add_argument('--version', default='v1.0-trainval', choices=['v1.0-trainval', 'v1.0-mini', 'v1.0-test'])
    nus.add_argument('--extra-tag', default='nuscenes', help='file-name prefix of the infos')
    nus.add_argument('--max-sweeps', type=int, default=10)

    syn = sub.add_parser(
        'synthetic',
        help='generate a synthetic nuScenes-format set (+ infos)',
        description=SPLIT_HELP + ' A finished set carries synthetic_nuscenes.json: re-running with '
        'the same arguments does nothing; a non-empty --out without it, or made with other '
        'arguments, is refused unless --overwrite.')
    syn.add_argument('--out', required=True, help='output root, e.g. data/nuscenes-synthetic')
    syn.add_argument('--scenes', type=int, default=10)
    syn.add_argument('--seed', type=int, default=0)
    syn.add_argument('--samples-per-scene', type=int, default=8, help='keyframes (2 Hz) per scene')
    syn.add_argument('--version', default=None, choices=['v1.0-mini', 'v1.0-trainval'], help=SPLIT_HELP)
    syn.add_argument('--val-scenes', type=int, default=None, help='number of val scenes (see above)')
    syn.add_argument(
        '--sweeps-per-keyframe', type=int, default=9, help='LiDAR sweeps between keyframes (9 = nuScenes 20 Hz)')
    syn.add_argument('--azimuth-steps', type=int, default=1080, help='LiDAR rays per beam per revolution')
    syn.add_argument('--extra-tag', default='nuscenes')
    syn.add_argument('--no-infos', action='store_true', help='only write the raw dataset')
    syn.add_argument('--overwrite', action='store_true', help='replace a previous (or partial) set in --out')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from projects.mmdet3d_plugin.datasets.converters import DataPrepError, prepare_nuscenes
    from projects.mmdet3d_plugin.datasets.converters.prep_summary import prep_summary
    try:
        if args.dataset == 'nuscenes':
            seconds = {}
            out = prepare_nuscenes(
                args.root_path,
                args.out_dir or args.root_path,
                args.version,
                extra_tag=args.extra_tag,
                max_sweeps=args.max_sweeps,
                seconds=seconds)
            print(prep_summary(out, seconds))
        else:
            from projects.mmdet3d_plugin.datasets.synthetic.build import build_synthetic_dataset
            done = build_synthetic_dataset(
                args.out,
                args.scenes,
                seed=args.seed,
                samples_per_scene=args.samples_per_scene,
                version=args.version,
                num_val_scenes=args.val_scenes,
                sweeps_per_keyframe=args.sweeps_per_keyframe,
                azimuth_steps=args.azimuth_steps,
                with_infos=not args.no_infos,
                extra_tag=args.extra_tag,
                overwrite=args.overwrite)
            summary = done['summary']
            print(f'synthetic set in {args.out}: {summary["version"]}, {len(summary["train_scenes"])} train + '
                  f'{len(summary["val_scenes"])} val scenes, {summary["samples"]} samples, '
                  f'{summary["annotations"]} annotations')
            if summary.get('files'):
                seconds = {k: v for k, v in done['seconds'].items() if k != 'total'}
                print(prep_summary(summary['files'], seconds))
            print(f'total {done["seconds"]["total"]:.1f} s')
    except (DataPrepError, FileExistsError, ValueError) as e:
        sys.exit(f'create_data.py: error: {e}')


if __name__ == '__main__':
    main()
