"""An epoch-based training loop that resumes in the middle of an epoch.

mmengine's ``EpochBasedTrainLoop`` resumes at epoch boundaries only: from a mid-epoch checkpoint (written by
``SignalCheckpointHook`` on preemption) it would run the interrupted epoch again from its first batch, with
the iteration counter (and the LR schedule) already advanced. This loop skips the batches of the interrupted
epoch that the checkpoint already trained on: the sampler order of the epoch is the same (DefaultSampler
seeds it with ``seed + epoch``), and the skipped indices are dropped at the sampler, so no sample is loaded
for nothing. A checkpoint taken after the last batch of an epoch resumes with that epoch's end hooks
(checkpoint, validation), which the interrupted run did not reach.
"""
from contextlib import contextmanager
from itertools import islice

from mmengine.runner import EpochBasedTrainLoop

from mmdet3d.registry import LOOPS


class _SkipFirst:
    """A sampler view without its first ``n`` indices; reports the full length so that ``len(dataloader)``
    (used by the hooks' end-of-epoch checks) stays the epoch's length."""

    def __init__(self, sampler, n: int):
        self.sampler, self.n = sampler, n

    def __iter__(self):
        return islice(iter(self.sampler), self.n, None)

    def __len__(self):
        return len(self.sampler)


@contextmanager
def _skip_batches(dataloader, num_batches: int):
    batch_sampler = dataloader.batch_sampler
    if batch_sampler is None or not hasattr(batch_sampler, 'sampler') or not hasattr(batch_sampler, 'batch_size'):
        raise RuntimeError('ResumableEpochBasedTrainLoop needs a DataLoader with a batch size (BatchSampler) to '
                           'resume in the middle of an epoch')
    original = batch_sampler.sampler
    batch_sampler.sampler = _SkipFirst(original, num_batches * batch_sampler.batch_size)
    try:
        yield
    finally:
        batch_sampler.sampler = original


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` (same arguments) that continues a partly trained epoch after ``--resume``."""

    def run_epoch(self) -> None:
        done = self._iter - self._epoch * len(self.dataloader)
        if done == len(self.dataloader):  # stopped after the epoch's last batch, before its end-of-epoch hooks
            self.runner.call_hook('after_train_epoch')
            self._epoch += 1
            return
        if not 0 < done < len(self.dataloader):
            return super().run_epoch()
        self.runner.logger.info(f'resuming epoch {self._epoch + 1} after its batch {done} '
                                f'(of {len(self.dataloader)})')
        self.runner.call_hook('before_train_epoch')  # sets the sampler's epoch (DistSamplerSeedHook)
        self.runner.model.train()
        with _skip_batches(self.dataloader, done):
            for idx, data_batch in enumerate(self.dataloader, start=done):
                self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
