"""Summarize a learning run from its mmengine text logs: devkit mAP per evaluation, and when it passed a target.

A run may come in segments (a training interrupted and continued with ``--resume``): give its logs in order.

    python tools/analysis_tools/summarize_fit_logs.py --run sdpa seg1.log seg2.log --run exact ... [--target 0.9] \
        [--out docs/benchmarks/demo_fit_gpu/learning_proof] [--plot map.png]

Prints a table and writes ``<out>.json`` / ``<out>.md``; ``--plot`` draws mAP and NDS against the training
iteration (one line per run, the target as a dashed line) as a PNG; ``tools/analysis_tools/plot_memory.py``
draws the loss. Per run: each evaluation (epoch, iteration, mAP, NDS),
the first evaluation above ``--target`` with its iteration count and wall-clock minutes (summed over the
segments, each from its first to its last log line, so process start-up, evaluations and the iterations redone
after an interruption count), and each segment's span.
"""
import argparse
import json
import re
import sys
from datetime import datetime

STAMP = re.compile(r'^(?:(\d{4})/)?(\d\d/\d\d \d\d:\d\d:\d\d) - mmengine')  # file logs carry the year
TRAIN = re.compile(r'Epoch\(train\) +\[(\d+)\]\[ *(\d+)/(\d+)\]')
VAL = re.compile(r'Epoch\(val\) \[(\d+)\]\[')
METRIC = 'NuScenes metric/pred_instances_3d_NuScenes/{}: ([0-9.]+)'


def parse_log(path, year):
    """(segment dict, evaluations) from one text log; times as datetimes of `year`."""
    first = last = None
    iters_per_epoch, last_train = None, None
    evals = []
    with open(path, errors='replace') as f:
        for line in f:
            m = STAMP.match(line)
            if not m:
                continue
            year = int(m.group(1)) if m.group(1) else year
            t = datetime.strptime(f'{year}/{m.group(2)}', '%Y/%m/%d %H:%M:%S')
            if last is not None and t < last:  # the log ran over a new year
                year += 1
                t = t.replace(year=year)
            first = first or t
            last = t
            tr = TRAIN.search(line)
            if tr:
                iters_per_epoch = int(tr.group(3))
                last_train = (int(tr.group(1)), int(tr.group(2)))
            va = VAL.search(line)
            if va and 'mAP' in line:
                evals.append(
                    dict(
                        epoch=int(va.group(1)),
                        time=t,
                        mAP=float(re.search(METRIC.format('mAP'), line).group(1)),
                        NDS=float(re.search(METRIC.format('NDS'), line).group(1))))
    if first is None:
        raise ValueError(f'{path}: no mmengine log line found (expected lines like "MM/DD HH:MM:SS - mmengine ...")')
    seg = dict(
        log=path,
        start=first,
        end=last,
        minutes=(last - first).total_seconds() / 60,
        iters_per_epoch=iters_per_epoch,
        last_train_epoch_iter=last_train)
    return seg, evals


def summarize(label, logs, target, year):
    segments, evals, elapsed = [], [], 0.0
    reached, iters_per_epoch = None, None
    for path in logs:
        seg, seg_evals = parse_log(path, year)
        iters_per_epoch = seg['iters_per_epoch'] or iters_per_epoch  # a segment may end before a train line
        for e in seg_evals:
            e['iteration'] = e['epoch'] * iters_per_epoch if iters_per_epoch else None
            e['wall_minutes'] = elapsed + (e['time'] - seg['start']).total_seconds() / 60
            if reached is None and e['mAP'] > target:
                reached = e
        elapsed += seg['minutes']
        segments.append(seg)
        evals += seg_evals
    return dict(
        label=label, target=target, reached=reached, evaluations=evals, segments=segments, total_wall_minutes=elapsed)


def to_markdown(runs):
    lines = [
        '| run | mAP > target at epoch | iterations | wall-clock min | mAP | NDS | segments (min) |',
        '| --- | ---: | ---: | ---: | ---: | ---: | --- |'
    ]
    for r in runs:
        e = r['reached']
        segs = ' + '.join(f'{s["minutes"]:.1f}' for s in r['segments'])
        if e is None:
            lines.append(f'| {r["label"]} | not reached (best {max(x["mAP"] for x in r["evaluations"]):.4f}) '
                         f'| | | | | {segs} |')
        else:
            lines.append(f'| {r["label"]} | {e["epoch"]} | {e["iteration"]} | {e["wall_minutes"]:.1f} | '
                         f'{e["mAP"]:.4f} | {e["NDS"]:.4f} | {segs} |')
    lines += ['', 'mAP per evaluation (epoch: mAP):', '']
    for r in runs:
        lines.append(f'- {r["label"]}: ' + ', '.join(f'{e["epoch"]}: {e["mAP"]:.3f}' for e in r['evaluations']))
    return '\n'.join(lines) + '\n'


def plot_runs(runs, path):
    """Draw devkit mAP and NDS against the iteration of each evaluation; returns the drawn series
    ``{label: {'iteration': [...], 'mAP': [...], 'NDS': [...]}}``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    drawn = {}
    for r in runs:
        evals = [e for e in r['evaluations'] if e['iteration'] is not None]
        series = drawn[r['label']] = {k: [e[k] for e in evals] for k in ('iteration', 'mAP', 'NDS')}
        for ax, key in zip(axes, ('mAP', 'NDS')):
            ax.plot(series['iteration'], series[key], marker='o', label=r['label'])
    for ax, key in zip(axes, ('mAP', 'NDS')):
        if key == 'mAP':
            ax.axhline(runs[0]['target'], color='grey', linestyle='--', linewidth=1, label='target')
        ax.set_xlabel('training iteration')
        ax.set_ylabel(f'devkit {key}')
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        '--run',
        nargs='+',
        action='append',
        required=True,
        metavar=('LABEL', 'LOG'),
        help='a label, then its text logs in order')
    p.add_argument('--target', type=float, default=0.9)
    p.add_argument('--year', type=int, default=datetime.now().year, help='year of the log stamps (MM/DD only)')
    p.add_argument('--out', default=None, help='write <out>.json and <out>.md')
    p.add_argument('--plot', default=None, help='write a PNG of mAP and NDS against the iteration')
    args = p.parse_args()
    for run in args.run:
        if len(run) < 2:
            sys.exit(f'--run {run[0]}: give a label and at least one log file')
    runs = [summarize(r[0], r[1:], args.target, args.year) for r in args.run]
    md = to_markdown(runs)
    print(md)
    if args.out:
        with open(args.out + '.json', 'w') as f:
            json.dump(runs, f, indent=2, default=str)
        with open(args.out + '.md', 'w') as f:
            f.write(md)
        print(f'wrote {args.out}.json and {args.out}.md')
    if args.plot:
        plot_runs(runs, args.plot)
        print(f'wrote {args.plot}')


if __name__ == '__main__':
    main()
