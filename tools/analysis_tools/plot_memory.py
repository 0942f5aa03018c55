"""Plot memory and loss against iteration from mmengine work dirs, as PNG.

Usage::

    python tools/analysis_tools/plot_memory.py WORK_DIR [WORK_DIR ...] --out memory.png \
        [--keys mem_peak_alloc_mib loss] [--labels sdpa exact] [--all-runs]

Each WORK_DIR is a training work dir (its newest timestamped run folder
``<work_dir>/<YYYYmmdd_HHMMSS>/vis_data/scalars.json`` is read; ``--all-runs``
reads every run folder), a run folder, or a ``scalars.json`` file. Training
records (those carrying ``iter``) are drawn, one line per run (and per rank for
``<key>_rank<r>`` keys of distributed runs), one subplot per key. Default keys:
the memory peaks GPUMemoryHook logs (``mem_peak_alloc_mib`` on GPU,
``max_rss_mib`` on CPU) and ``loss``, those present in at least one run.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.mmdet3d_plugin.utils.scalar_logs import load_runs, plot


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    parser.add_argument('--out', required=True, help='output PNG path')
    parser.add_argument('--keys', nargs='+', help='scalar keys to plot')
    parser.add_argument('--labels', nargs='+', help='one label per work dir')
    parser.add_argument(
        '--all-runs', action='store_true', help='plot every timestamped run of each work dir, not the newest')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    runs = load_runs(args.work_dirs, args.labels, args.all_runs)
    keys = plot(runs, args.keys, args.out)
    print(f'wrote {args.out}: {", ".join(keys)} for {len(runs)} run(s)')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'plot_memory.py: error: {e}')
