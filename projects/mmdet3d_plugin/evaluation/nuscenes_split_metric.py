"""NuScenesMetric on a chosen official split (e.g. the training scenes), safe with no predictions.

mmdet3d's NuScenesMetric always evaluates on the validation split of its version ('mini_val' / 'val'). To show
that a model learns (fits its training scenes), the official devkit must score it on 'mini_train' / 'train'
instead; everything else (result conversion, devkit evaluation, logged keys) stays mmdet3d's.
The devkit also raises ('Invalid box type: None') when no sample has a single predicted box, as happens
with a freshly initialised model; that case scores 0 here, with a warning, instead of ending the run (the
version's table directory must still exist, so a version mismatch is not hidden by an empty result).
The version is the evaluated dataset's (``metainfo.version``, from its info file); ``version=...`` in the
evaluator config, if given, must agree with it (``tools/train.py``/``test.py`` check this before the run).
"""
import logging
import os.path as osp
from contextlib import contextmanager

import mmengine
from mmengine.logging import print_log

from mmdet3d.evaluation.metrics import NuScenesMetric
from mmdet3d.registry import METRICS

# nuscenes.utils.splits names accepted per dataset version
VALID_SPLITS = {
    'v1.0-mini': ('mini_train', 'mini_val'),
    'v1.0-trainval': ('train', 'val'),
    'v1.0-test': ('test', ),
}


@contextmanager
def _devkit_eval_set(eval_set: str):
    """Make ``NuScenesEval`` (looked up by mmdet3d at call time) evaluate on ``eval_set``."""
    from nuscenes.eval.detection import evaluate
    original = evaluate.NuScenesEval

    def with_split(*args, **kwargs):
        kwargs['eval_set'] = eval_set
        return original(*args, **kwargs)

    evaluate.NuScenesEval = with_split
    try:
        yield
    finally:
        evaluate.NuScenesEval = original


@METRICS.register_module()
class NuScenesSplitMetric(NuScenesMetric):
    """``NuScenesMetric`` that scores the official split ``eval_set`` (default: the version's val split).

    Args:
        eval_set (str, optional): 'mini_train' / 'mini_val' for v1.0-mini, 'train' / 'val' for v1.0-trainval.
            The dataset evaluated must hold exactly that split's samples (its info file).
        version (str, optional): the nuScenes version expected; an error if the dataset's differs.
        **kwargs: NuScenesMetric's arguments.
    """

    def __init__(self, eval_set=None, version=None, **kwargs):
        super().__init__(**kwargs)
        self.expected_version = version
        known = sorted(s for splits in VALID_SPLITS.values() for s in splits)
        if eval_set is not None and eval_set not in known:
            raise ValueError(f'NuScenesSplitMetric: unknown eval_set={eval_set!r}; expected one of {known}')
        self.eval_set = eval_set

    def compute_metrics(self, results: list) -> dict:
        """mmdet3d's, after checking the dataset's version, and announced: on the full val split the conversion
        and the devkit take minutes."""
        meta = self.dataset_meta or {}
        version = meta.get('version')
        if version is None:
            if self.expected_version is None:
                raise ValueError('NuScenesSplitMetric: the evaluated dataset has no metainfo.version (its info file '
                                 'has none); set `metainfo.version` in the dataset config')
            self.dataset_meta = dict(meta, version=self.expected_version)
            version = self.expected_version
        elif self.expected_version is not None and version != self.expected_version:
            raise ValueError(f'NuScenesSplitMetric: evaluator version={self.expected_version!r} but the evaluated '
                             f'dataset is {version!r} (its metainfo.version); remove the evaluator\'s `version`')
        split = self.eval_set or VALID_SPLITS.get(version, ('the validation', ))[-1]
        print_log(
            f'NuScenesSplitMetric: converting the predictions of {len(results)} samples to the nuScenes '
            f'results format, then scoring them on the {split!r} split with the official devkit (loads the '
            'tables, matches boxes per class at 0.5/1/2/4 m)...',
            logger='current')
        return super().compute_metrics(results)

    def _evaluate_single(self, result_path, classes=None, result_name='pred_instances_3d'):
        tables = osp.join(self.data_root, self.version)
        if not osp.isdir(tables):
            raise FileNotFoundError(f'NuScenesSplitMetric: the devkit reads the {self.version} tables from {tables}, '
                                    'which does not exist; set the evaluator\'s data_root to the nuScenes root that '
                                    f'holds {self.version}/')
        print_log(f'NuScenesSplitMetric: nuScenes devkit evaluation of {result_path}', logger='current')
        valid = VALID_SPLITS.get(self.version, ())
        if self.eval_set is not None and self.eval_set not in valid:
            raise ValueError(f'NuScenesSplitMetric: eval_set={self.eval_set!r} is not a split of the dataset '
                             f'version {self.version!r}; expected one of {valid}')
        if not any(mmengine.load(result_path)['results'].values()):
            print_log(
                f'{result_path} holds no predicted box: every AP, mAP and NDS is 0',
                logger='current',
                level=logging.WARNING)
            prefix = f'{result_name}_NuScenes'
            zeros = {f'{prefix}/{name}_AP_dist_{d}': 0.0 for name in classes or () for d in (0.5, 1.0, 2.0, 4.0)}
            return dict(zeros, **{f'{prefix}/NDS': 0.0, f'{prefix}/mAP': 0.0})
        if self.eval_set is None:
            return super()._evaluate_single(result_path, classes=classes, result_name=result_name)
        with _devkit_eval_set(self.eval_set):
            return super()._evaluate_single(result_path, classes=classes, result_name=result_name)
