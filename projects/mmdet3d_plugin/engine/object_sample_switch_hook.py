"""CMT's "15e + 5e": GT paste (``ObjectSample`` and subclasses such as ``UnifiedObjectSample``) on for the first
``disable_after_epoch`` epochs, off from then on, also after a ``--resume`` past the switch.

mmdet3d's ``DisableObjectSampleHook`` acts only when ``runner.epoch == disable_after_epoch``, so a run resumed at
a later epoch trains with GT paste on again; it also unwraps only one dataset wrapper. This hook sets the state
from the epoch before every training epoch (``disabled = epoch >= disable_after_epoch``), on every ``ObjectSample``
of every dataset under the train dataloader's dataset (``CBGSDataset`` / ``RepeatDataset`` / ``ConcatDataset``
wrappers, nested pipelines). Worker processes hold copies of the dataset: when the state changes and the
dataloader keeps persistent workers with a live iterator, the iterator is dropped so that the next epoch starts
new workers from the updated dataset (non-persistent workers are re-created every epoch anyway).
"""
from typing import Iterator, List

from mmengine.hooks import Hook

from mmdet3d.datasets.transforms import ObjectSample
from mmdet3d.registry import HOOKS


def _leaf_datasets(dataset) -> Iterator:
    """The datasets under any nesting of wrappers (``.dataset`` / ``.datasets``)."""
    if hasattr(dataset, 'datasets'):
        for d in dataset.datasets:
            yield from _leaf_datasets(d)
    elif hasattr(dataset, 'dataset'):
        yield from _leaf_datasets(dataset.dataset)
    else:
        yield dataset


def _object_samples(transforms) -> Iterator[ObjectSample]:
    """Every ``ObjectSample`` in a pipeline (a ``Compose``, a list, or transforms that hold ``transforms``)."""
    items = getattr(transforms, 'transforms', transforms)
    if isinstance(items, ObjectSample):
        yield items
        return
    if not isinstance(items, (list, tuple)):
        return
    for t in items:
        if isinstance(t, ObjectSample):
            yield t
        elif hasattr(t, 'transforms'):
            yield from _object_samples(t.transforms)


def find_object_samples(dataset) -> List[ObjectSample]:
    """All GT-paste transforms of the pipelines under ``dataset`` (wrappers unwrapped)."""
    found = []
    for leaf in _leaf_datasets(dataset):
        pipeline = getattr(leaf, 'pipeline', None)
        if pipeline is not None:
            found.extend(_object_samples(pipeline))
    return found


@HOOKS.register_module()
class ObjectSampleSwitchHook(Hook):
    """GT paste on for epochs ``[0, disable_after_epoch)``, off from ``disable_after_epoch`` (0-based) on.

    Args:
        disable_after_epoch (int): number of epochs trained with GT paste (CMT: 15 of 20).
    """
    priority = 'NORMAL'

    def __init__(self, disable_after_epoch: int = 15) -> None:
        if not isinstance(disable_after_epoch, int) or disable_after_epoch < 0:
            raise ValueError(f'disable_after_epoch must be an int >= 0, got {disable_after_epoch!r}')
        self.disable_after_epoch = disable_after_epoch

    def before_train_epoch(self, runner) -> None:
        loader = runner.train_dataloader
        disabled = runner.epoch >= self.disable_after_epoch
        transforms = find_object_samples(loader.dataset)
        if not transforms:
            runner.logger.warning('ObjectSampleSwitchHook: no ObjectSample transform in the train pipeline')
            return
        changed = [t for t in transforms if t.disabled != disabled]
        for t in changed:
            t.disabled = disabled
        if changed:
            runner.logger.info(f'GT paste (ObjectSample) {"off" if disabled else "on"} from epoch {runner.epoch} '
                               f'(disable_after_epoch={self.disable_after_epoch})')
            # persistent workers keep their copy of the pipeline: start new ones for this epoch
            if getattr(loader, 'persistent_workers', False) and getattr(loader, '_iterator', None) is not None:
                loader._iterator = None
