"""Memory and loss curves of mmengine training runs: read the training records of a work dir's
``vis_data/scalars.json`` and draw them, one subplot per key, one line per run (and rank).

Used by ``tools/analysis_tools/plot_memory.py`` (its command line), ``tools/run_demo.py`` (the demo's
``loss_memory.png``) and the memory-hook tests."""
import json
import os.path as osp
import re
from glob import glob
from typing import Dict, List, Optional, Sequence

DEFAULT_KEYS = ('mem_peak_alloc_mib', 'max_rss_mib', 'loss')
RUN_DIR = re.compile(r'^\d{8}_\d{6}$')


def find_scalar_files(path: str, all_runs: bool = False) -> List[str]:
    """The scalars.json file(s) of a work dir, run folder or file path.

    Raises:
        FileNotFoundError: naming the path(s) searched when none exists.
    """
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'work dir not found: {path}')
    own = osp.join(path, 'vis_data', 'scalars.json')
    if osp.isfile(own):  # a run folder
        return [own]
    pattern = osp.join(path, '*', 'vis_data', 'scalars.json')
    files = sorted(f for f in glob(pattern) if RUN_DIR.match(osp.basename(osp.dirname(osp.dirname(f)))))
    if not files:
        raise FileNotFoundError(f'no scalars in {path}: searched {own} and {pattern} '
                                '(mmengine LocalVisBackend output of a training run)')
    return files if all_runs else files[-1:]


def read_train_scalars(path: str) -> List[Dict]:
    """Training records (JSON lines with an ``iter`` field) of scalars.json."""
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}:{lineno}: not a JSON line ({e})')
            if 'iter' in record:
                records.append(record)
    return records


def series(records: Sequence[Dict], key: str) -> Dict[str, tuple]:
    """``{suffix: (iters, values)}`` for ``key`` and its ``key_rank<r>``."""
    pattern = re.compile(rf'^{re.escape(key)}(_rank\d+)?$')
    out: Dict[str, tuple] = {}
    for rec in records:
        for name, value in rec.items():
            m = pattern.match(name)
            if m and isinstance(value, (int, float)):
                xs, ys = out.setdefault(m.group(1) or '', ([], []))
                xs.append(rec['iter'])
                ys.append(value)
    return out


def load_runs(work_dirs: Sequence[str], labels: Optional[Sequence[str]] = None, all_runs: bool = False) -> List[tuple]:
    """``[(label, records)]``, one entry per run."""
    if labels is not None and len(labels) != len(work_dirs):
        raise ValueError(f'--labels: got {len(labels)} labels for '
                         f'{len(work_dirs)} work dirs; give one per work dir')
    runs = []
    for i, work_dir in enumerate(work_dirs):
        files = find_scalar_files(work_dir, all_runs)
        base = labels[i] if labels else osp.basename(osp.normpath(work_dir)) or work_dir
        for path in files:
            run_name = osp.basename(osp.dirname(osp.dirname(path)))
            label = f'{base} {run_name}' if len(files) > 1 else base
            records = read_train_scalars(path)
            if not records:
                raise ValueError(f'{path} has no training records '
                                 '(JSON lines with an "iter" field)')
            runs.append((label, records))
    return runs


def plot(runs: Sequence[tuple], keys: Optional[Sequence[str]], out: str):
    """Draw one subplot per key, one line per run (and rank); save PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    available = sorted({k for _, recs in runs for r in recs for k in r})
    wanted = list(keys) if keys else list(DEFAULT_KEYS)
    present = [k for k in wanted if any(series(r, k) for _, r in runs)]
    missing = [k for k in wanted if k not in present]
    if keys and missing:
        raise ValueError(f'--keys {missing} not in any run; available keys: '
                         f'{available}')
    if not present:
        raise ValueError(f'none of the default keys {list(DEFAULT_KEYS)} is '
                         f'in the runs; pass --keys from {available}')

    fig, axes = plt.subplots(len(present), 1, figsize=(8, 3 * len(present)), sharex=True, squeeze=False)
    styles = ('-', '--', ':', '-.')
    for ax, key in zip(axes[:, 0], present):
        for i, (label, records) in enumerate(runs):
            # one colour per run, one line style per rank
            for j, (suffix, (xs, ys)) in enumerate(sorted(series(records, key).items())):
                ax.plot(
                    xs,
                    ys,
                    color=f'C{i % 10}',
                    linestyle=styles[j % len(styles)],
                    label=f'{label}{suffix.replace("_", " ")}')
        ax.set_title(key)
        ax.set_ylabel('MiB' if key.endswith('_mib') else key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    axes[-1, 0].set_xlabel('iteration')
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return present
