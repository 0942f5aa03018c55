"""What a data preparation wrote, in a few lines: samples and boxes per info file, GT-database objects per class."""
import os
import os.path as osp
from collections import Counter
from typing import Dict, Optional


def _dir_size_mib(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(osp.getsize(osp.join(root, f)) for f in files)
    return total / 2**20


def prep_summary(files: Dict, seconds: Optional[Dict] = None) -> str:
    """A summary of ``prepare_nuscenes``'s output ``files`` = dict(infos=[pkl, ...], dbinfos=pkl or None):
    per info file its samples and annotated boxes, per class the GT-database objects (and how many carry an image
    crop), the database folder's size, and the ``seconds`` per stage."""
    import mmengine
    lines = ['== data preparation summary ==']
    for path in files.get('infos') or []:
        data = mmengine.load(path)
        infos = data.get('data_list', []) if isinstance(data, dict) else data
        boxes = sum(len(i.get('instances', [])) for i in infos)
        lines.append(f'{path}: {len(infos)} samples, {boxes} annotated boxes')
    db = files.get('dbinfos')
    if db:
        dbinfos = mmengine.load(db)
        counts = Counter({name: len(recs) for name, recs in dbinfos.items()})
        crops = sum(1 for recs in dbinfos.values() for r in recs if r.get('image_path'))
        per_class = ', '.join(f'{name} {n}' for name, n in counts.most_common())
        db_dir = osp.join(osp.dirname(db), osp.basename(db).replace('_dbinfos_train.pkl', '_gt_database'))
        size = f', {_dir_size_mib(db_dir):.1f} MiB in {db_dir}' if osp.isdir(db_dir) else ''
        lines.append(f'{db}: {sum(counts.values())} GT-database objects ({crops} with an image crop){size}')
        lines.append(f'  per class: {per_class or "none"}')
    if seconds:
        lines.append('time: ' + ', '.join(f'{k} {v:.1f} s' for k, v in seconds.items()))
    return '\n'.join(lines)
