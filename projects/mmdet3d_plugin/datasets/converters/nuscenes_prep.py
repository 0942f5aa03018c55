"""The whole nuScenes data preparation: v2 infos (mmdet3d's converter) and the CMT GT database."""
import os
import os.path as osp
import time

from .cmt_gt_database import create_cmt_gt_database
from .mmdet3d_converters import check_nuscenes_root, create_nuscenes_infos_v2


def prepare_nuscenes(root_path: str,
                     out_dir: str,
                     version: str = 'v1.0-trainval',
                     extra_tag: str = 'nuscenes',
                     max_sweeps: int = 10,
                     seconds: dict = None) -> dict:
    """Infos for every split of ``version`` in ``out_dir`` and, unless v1.0-test, the CMT GT database
    (``{extra_tag}_gt_database/`` and ``{extra_tag}_dbinfos_train.pkl`` in ``out_dir``).

    Database records hold paths relative to ``out_dir`` (set the sampler's ``data_root`` to it).
    Returns paths: dict(infos=[...], dbinfos=path or None). Prints each stage as it starts (the converters show
    progress bars); ``seconds``, when given, receives each stage's duration.
    """
    check_nuscenes_root(root_path, version)
    os.makedirs(out_dir, exist_ok=True)
    seconds = {} if seconds is None else seconds
    stages = 1 if version == 'v1.0-test' else 2
    print(
        f'[infos 1/{stages}] mmdet3d nuScenes converter on {root_path} ({version}): sample infos with '
        f'{max_sweeps} sweeps, then the v2 (mmdet3d 1.x) info format',
        flush=True)
    start = time.time()
    infos = create_nuscenes_infos_v2(root_path, out_dir, version, info_prefix=extra_tag, max_sweeps=max_sweeps)
    seconds['infos'] = time.time() - start
    dbinfos = None
    if version != 'v1.0-test':
        train_info = osp.join(out_dir, f'{extra_tag}_infos_train.pkl')
        print(f'[infos 2/{stages}] CMT GT database from {train_info}: object points and image crops', flush=True)
        start = time.time()
        dbinfos = create_cmt_gt_database(
            root_path,
            train_info,
            info_prefix=extra_tag,
            sweeps=max_sweeps,
            db_dir=osp.join(out_dir, f'{extra_tag}_gt_database'),
            db_info_path=osp.join(out_dir, f'{extra_tag}_dbinfos_train.pkl'))
        seconds['gt_database'] = time.time() - start
    return dict(infos=infos, dbinfos=dbinfos)
